// Package imds reads the instance's identity and network placement from the
// EC2 instance metadata service, with IMDSv2 session tokens only unless the
// caller allows IMDSv1.
package imds

import (
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

const (
	// dialTimeout bounds the TCP connect. IMDS sits on the host, one
	// link away; a connect that takes longer means there is no IMDS
	// (not on EC2, or something drops the packets).
	dialTimeout = 250 * time.Millisecond

	// headerTimeout bounds the wait for a reply once connected. IMDS
	// answers in milliseconds; the container hop-limit case shows up as
	// a token reply that never arrives, and waiting longer than this
	// only delays saying so.
	headerTimeout = time.Second

	// maxAttempts is tries per request: one retry covers a dropped
	// packet or a throttled burst, and keeps a dead endpoint quick.
	maxAttempts = 2

	// maxBackoff caps the pause before the retry, for the same reason.
	maxBackoff = 200 * time.Millisecond
)

// endpointModeEnv picks the IPv6 endpoint (fd00:ec2::254) when set to
// IPv6. The SDK only reads it through its shared config loader, which
// this package does not use.
const endpointModeEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"

// ClientOptions configures NewClient. The zero value is IMDSv2 only, at
// the endpoint the SDK would pick.
type ClientOptions struct {
	// AllowV1 lets requests go without a token when none can be had, as
	// the SDK does by default. Off, a token failure is an ErrNoToken.
	AllowV1 bool

	// Endpoint overrides the IMDS base URL, for example
	// http://127.0.0.1:1338. Empty means AWS_EC2_METADATA_SERVICE_ENDPOINT
	// if set, else http://169.254.169.254 (or the IPv6 address when
	// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6).
	Endpoint string
}

// NewClient returns an IMDS client for Load. It honours
// AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED as the
// SDK does, and never goes through an HTTP proxy.
func NewClient(o ClientOptions) *awsimds.Client {
	fallback := aws.FalseTernary
	if o.AllowV1 {
		fallback = aws.TrueTernary
	}

	mode := awsimds.EndpointModeStateUnset
	if strings.EqualFold(os.Getenv(endpointModeEnv), "IPv6") {
		mode = awsimds.EndpointModeStateIPv6
	}

	return awsimds.New(awsimds.Options{
		Endpoint:       o.Endpoint,
		EndpointMode:   mode,
		EnableFallback: fallback,
		HTTPClient:     tracingClient{httpClient()},
		Retryer: retry.NewStandard(func(r *retry.StandardOptions) {
			r.MaxAttempts = maxAttempts
			r.MaxBackoff = maxBackoff
		}),

		// Otherwise the SDK wraps the retryer in a "1 s maximum"
		// backoff that in fact waits the full second before every
		// retry, which is most of the time a dead endpoint costs.
		DisableDefaultMaxBackoff: true,
	})
}

// httpClient is a plain client with our timeouts. A plain *http.Client,
// not the SDK's buildable one, because the SDK rewrites the timeouts of
// its own kind with its defaults.
func httpClient() *http.Client {
	d := &net.Dialer{Timeout: dialTimeout}
	return &http.Client{
		Transport: &http.Transport{
			// IMDS is link-local: through a proxy the request would
			// fail, or worse, read the proxy host's metadata.
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ResponseHeaderTimeout: headerTimeout,
			MaxIdleConns:          1,
		},
	}
}
