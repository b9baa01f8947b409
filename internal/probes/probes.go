// Package probes runs the list, put, get and delete requests that show
// whether a bucket is reachable, and records for each the address the
// connection really used, so the path it took can be judged.
package probes

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/net/http/httpproxy"

	"github.com/pathagent/pathagent/internal/resolve"
)

// DefaultTimeout bounds one probe request, connect to last byte. It leaves
// room for the connect timeout plus a slow answer, and keeps a probe of four
// operations well under a minute even when every one of them hangs.
const DefaultTimeout = 10 * time.Second

// DefaultPrefix is where probe objects live, followed by the instance id:
// one prefix per instance, so agents never touch each other's objects and a
// bucket policy or lifecycle rule can single them out.
const DefaultPrefix = "pathagent-probe/"

// maxBody caps what a get probe reads back: probe objects are a few dozen
// bytes, and a larger answer is a mismatch whatever it holds.
const maxBody = 4096

// probeSuffix ends every probe object's key; the sweep removes nothing
// else.
const probeSuffix = ".probe"

// staleAfter is how old a probe object must be before the sweep removes
// it: far beyond the longest a probe runs (its put, get and delete, each
// bounded by the probe timeout), so the sweep never races a live probe.
const staleAfter = 5 * time.Minute

// listKeys is how many keys the list probe asks for: enough to clear a
// few leftovers a cycle, small enough to keep the answer tiny.
const listKeys = 10

var errNoAddress = errors.New("no address in the answer")

// Op is one probe operation.
type Op string

// The operations, in the order they run.
const (
	List   Op = "list"
	Put    Op = "put"
	Get    Op = "get"
	Delete Op = "delete"
)

// Phase is where a failed probe stopped.
type Phase string

// The phases a probe can fail in.
const (
	PhaseResolve Phase = "resolve" // the name did not resolve
	PhaseConnect Phase = "connect" // no TCP connection (refused, timed out, unreachable)
	PhaseTLS     Phase = "tls"     // the TLS handshake failed
	PhaseRequest Phase = "request" // S3 answered with an error, or the exchange broke off
	PhaseVerify  Phase = "verify"  // the object read back differs from the one written
)

// Result is the outcome of one probe request.
type Result struct {
	Op Op

	// Key is the object key a put, get or delete probe used.
	Key string

	// Success reports whether the request did what it should. It is
	// false for a skipped probe too: check Skipped first.
	Success bool

	// Skipped reports that the probe was not sent, because the probe it
	// depends on failed (a get after a failed put). Nothing is known.
	Skipped bool

	// FailedIn is the phase a failed probe stopped in; empty on success.
	FailedIn Phase

	// Code and HTTPStatus are S3's error code and status, when S3 (or
	// something speaking HTTP on its behalf) answered.
	Code       string
	HTTPStatus int

	// Error is the failure in words; empty on success.
	Error string

	// Host is the host of the request's URL; Resolution is how the
	// agent's resolver answered for the host it connected to (nil for an
	// address literal, and through a proxy, which resolves for itself).
	Host       string
	Resolution *resolve.Result

	// Remote is the address the connection used, or tried to use; it
	// is invalid when no connection was attempted.
	Remote netip.AddrPort

	// Proxy is the proxy the request went through, from the
	// environment, or empty.
	Proxy string

	// BucketRegion is the region S3 said the bucket is in, from the
	// x-amz-bucket-region header; empty when it did not say.
	BucketRegion string

	// RequestID is S3's request id, for a support case.
	RequestID string

	// Issuers are the organizations that issued the certificates the
	// server presented, leaf's issuer first; empty without TLS.
	Issuers []string

	Timings Timings
	Start   time.Time

	// TimedOut reports that the request ran out of time: connecting,
	// or waiting for the answer.
	TimedOut bool

	// err keeps the failure for Reason.
	err error
}

// Bucket is a bucket to probe.
type Bucket struct {
	Name string

	// Region is where the bucket is, when known in advance. Empty means
	// the agent's own region, corrected if S3 redirects.
	Region string
}

// BucketResult is every probe of one bucket.
type BucketResult struct {
	Bucket string

	// Region is the region the probes were sent to.
	Region string

	// Redirect is the first list attempt, when S3 answered it with the
	// bucket's real region and the probes were sent again there; nil
	// otherwise.
	Redirect *Result

	Probes []Result

	// Swept counts leftover probe objects of an earlier, interrupted
	// run that this run deleted.
	Swept int

	// Policy is the bucket policy, read only when a probe was denied,
	// to explain the denial. PolicyRead reports whether it was read:
	// false with PolicyError set when reading it failed (often itself
	// AccessDenied: the role lacks s3:GetBucketPolicy), and false with
	// both empty when no probe was denied. A bucket without a policy is
	// PolicyRead with Policy empty.
	Policy      string
	PolicyRead  bool
	PolicyError string
}

// Prober runs the probes. Its zero value is not usable: Config, Resolver,
// Region and Prefix are required.
type Prober struct {
	// Config is the SDK configuration: credentials and retry settings.
	// Its HTTPClient is extended to trace every connection.
	Config aws.Config

	// Resolver resolves S3's names.
	Resolver Resolver

	// Region is the agent's own region.
	Region string

	// Endpoint overrides S3's endpoint. "{region}" in it is replaced by
	// the bucket's region. Empty means the SDK's own choice, which
	// honours AWS_ENDPOINT_URL_S3.
	Endpoint string

	// PathStyle selects path-style addressing (host/bucket/key) instead
	// of virtual-hosted names (bucket.host/key).
	PathStyle bool

	// Prefix is the key prefix every probe object lives under, ending in
	// a slash.
	Prefix string

	// Timeout bounds each request; DefaultTimeout when zero.
	Timeout time.Duration

	// Proxy is the proxy configuration; nil means the environment's.
	Proxy *httpproxy.Config
}

// Run probes one bucket: list, then put, get and delete of one new object.
// A bucket in another region, found out from S3's redirect, is probed again
// in its own region.
func (p *Prober) Run(ctx context.Context, b Bucket) BucketResult {
	region := b.Region
	if region == "" {
		region = p.Region
	}
	out := BucketResult{Bucket: b.Name, Region: region}

	client := p.client(region)
	list, stale := p.list(ctx, client, b.Name)

	// S3 names the bucket's region on a wrong-region answer; follow it
	// once, so the probes measure the path the bucket's traffic takes.
	if !list.Success && list.BucketRegion != "" && list.BucketRegion != region {
		redirect := list
		out.Redirect = &redirect
		out.Region = list.BucketRegion
		client = p.client(out.Region)
		list, stale = p.list(ctx, client, b.Name)
	}
	out.Probes = append(out.Probes, list)
	out.Swept = p.sweep(ctx, client, b.Name, stale)

	put, key, body := p.put(ctx, client, b.Name)
	out.Probes = append(out.Probes, put)
	if !put.Success {
		out.Probes = append(out.Probes, Result{Op: Get, Key: key, Skipped: true})

		// A put that timed out or broke off after sending may have
		// been written all the same: delete it now rather than leave
		// it to a later sweep. One S3 answered with a status did not.
		if put.HTTPStatus == 0 && put.FailedIn == PhaseRequest {
			out.Probes = append(out.Probes, p.delete(ctx, client, b.Name, key))
		} else {
			out.Probes = append(out.Probes, Result{Op: Delete, Key: key, Skipped: true})
		}
		p.readPolicy(ctx, client, &out)
		return out
	}

	out.Probes = append(out.Probes, p.get(ctx, client, b.Name, key, body))

	// The delete runs whatever the get found: the object must not stay.
	out.Probes = append(out.Probes, p.delete(ctx, client, b.Name, key))
	p.readPolicy(ctx, client, &out)
	return out
}

// readPolicy reads the bucket policy when a probe was denied, so that the
// denial can be explained; otherwise the agent needs no permission to read
// it, and spends no request on it.
func (p *Prober) readPolicy(ctx context.Context, c *s3.Client, out *BucketResult) {
	denied := false
	for _, r := range out.Probes {
		denied = denied || r.Reason() == ReasonAccessDenied
	}
	if !denied {
		return
	}

	var doc string
	r := p.do(ctx, "policy", "", func(ctx context.Context) error {
		res, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(out.Bucket)})
		if err != nil {
			return err
		}
		doc = aws.ToString(res.Policy)
		return nil
	})
	switch {
	case r.Success:
		out.Policy, out.PolicyRead = doc, true
	case r.Code == "NoSuchBucketPolicy":
		out.PolicyRead = true
	default:
		out.PolicyError = orCode(r)
	}
}

func orCode(r Result) string {
	if r.Code != "" {
		return r.Code
	}
	return r.Error
}

func (p *Prober) client(region string) *s3.Client {
	proxy := p.Proxy
	if proxy == nil {
		proxy = httpproxy.FromEnvironment()
	}
	cfg := p.Config.Copy()
	cfg.HTTPClient = newHTTPClient(cfg.HTTPClient, p.Resolver, proxy)

	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Region = region
		o.UsePathStyle = p.PathStyle
		// One attempt: a probe reports what one request met, and a
		// retry would hide the failure it exists to show.
		o.RetryMaxAttempts = 1
		if p.Endpoint != "" {
			o.BaseEndpoint = aws.String(strings.ReplaceAll(p.Endpoint, "{region}", region))
		}
	})
}

// list lists the probe prefix. It returns the probe objects a killed
// agent left behind, for Run to remove: older than staleAfter, so that an
// object another run of the agent is probing with right now is never
// taken, and named as the put probe names them.
func (p *Prober) list(ctx context.Context, c *s3.Client, bucket string) (Result, []string) {
	var stale []string
	r := p.do(ctx, List, "", func(ctx context.Context) error {
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket:  aws.String(bucket),
			Prefix:  aws.String(p.Prefix),
			MaxKeys: aws.Int32(listKeys),
		})
		if err != nil {
			return err
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			old := o.LastModified != nil && time.Since(*o.LastModified) > staleAfter
			if old && strings.HasPrefix(key, p.Prefix) && strings.HasSuffix(key, probeSuffix) {
				stale = append(stale, key)
			}
		}
		return nil
	})
	return r, stale
}

// sweep deletes leftover probe objects. It is best effort: a failure is
// logged by the caller through the count, and the next cycle tries again.
func (p *Prober) sweep(ctx context.Context, c *s3.Client, bucket string, keys []string) int {
	removed := 0
	for _, key := range keys {
		if r := p.delete(ctx, c, bucket, key); r.Success {
			removed++
		}
	}
	return removed
}

// put writes a new object under the probe prefix. The key holds the time
// and 64 random bits, and the request carries If-None-Match: *, so a probe
// can never overwrite an object, its own or anyone's.
func (p *Prober) put(ctx context.Context, c *s3.Client, bucket string) (Result, string, []byte) {
	now := time.Now().UTC()
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return Result{Op: Put, FailedIn: PhaseRequest, Error: fmt.Sprintf("make key: %v", err)}, "", nil
	}
	key := fmt.Sprintf("%s%s-%s%s", p.Prefix, now.Format("20060102T150405Z"), hex.EncodeToString(nonce), probeSuffix)
	body := fmt.Appendf(nil, "pathagent probe %s %s\n", now.Format(time.RFC3339Nano), hex.EncodeToString(nonce))

	r := p.do(ctx, Put, key, func(ctx context.Context) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentType:   aws.String("text/plain"),
			IfNoneMatch:   aws.String("*"),
		})
		return err
	})
	return r, key, body
}

func (p *Prober) get(ctx context.Context, c *s3.Client, bucket, key string, want []byte) Result {
	return p.do(ctx, Get, key, func(ctx context.Context) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(bucket),
			Key:    aws.String(key),
		})
		if err != nil {
			return err
		}
		defer out.Body.Close()

		got, err := io.ReadAll(io.LimitReader(out.Body, maxBody))
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if !bytes.Equal(got, want) {
			return errMismatch{got: len(got), want: len(want)}
		}
		return nil
	})
}

func (p *Prober) delete(ctx context.Context, c *s3.Client, bucket, key string) Result {
	return p.do(ctx, Delete, key, func(ctx context.Context) error {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{
			Bucket: aws.String(bucket),
			Key:    aws.String(key),
		})
		return err
	})
}

type errMismatch struct{ got, want int }

func (e errMismatch) Error() string {
	return fmt.Sprintf("object read back differs from the one written (%d bytes, wrote %d)", e.got, e.want)
}

// do runs one request with its own trace and deadline and turns what
// happened into a Result.
func (p *Prober) do(ctx context.Context, op Op, key string, send func(context.Context) error) Result {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	t := &trace{start: time.Now()}
	err := send(withTrace(ctx, t))
	end := time.Now()

	t.mu.Lock()
	r := Result{
		Op:         op,
		Key:        key,
		Success:    err == nil,
		Host:       t.host,
		Resolution: t.lookup,
		Remote:     t.remote,
		Start:      t.start,
		Issuers:    t.chain,
	}
	if t.proxy != nil {
		r.Proxy = t.proxy.Host
	}
	lookupErr, dialErr := t.lookupErr, t.dialErr
	if t.resolving && lookupErr == nil {
		// The request's deadline ended it while the name was still
		// being looked up: the lookup is what took too long.
		lookupErr = context.DeadlineExceeded
	}
	t.mu.Unlock()
	r.Timings = t.timings(end)

	if err != nil {
		r.err = err
		r.Error = shortError(err)
		r.FailedIn = phaseOf(err, lookupErr, dialErr)
		describeResponse(&r, err)
	}
	return r
}

// phaseOf decides where a request failed, from the error and from what the
// trace saw before it.
func phaseOf(err, lookupErr, dialErr error) Phase {
	var mismatch errMismatch
	switch {
	case errors.As(err, &mismatch):
		return PhaseVerify
	case lookupErr != nil:
		return PhaseResolve
	case dialErr != nil:
		return PhaseConnect
	case isTLS(err):
		return PhaseTLS
	}
	return PhaseRequest
}

// isTLS reports whether err comes from the TLS handshake: a certificate the
// trust store rejects, a name mismatch, an alert, or a peer that does not
// speak TLS at all.
func isTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &record) ||
		errors.As(err, &alert) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// shortError says what went wrong without the SDK's wrapping (operation
// name, attempt count, the whole request URL): the innermost network error
// when there is one, which names the address and what happened.
func shortError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// describeResponse fills in what S3 answered, if anything.
func describeResponse(r *Result, err error) {
	var api smithy.APIError
	if errors.As(err, &api) {
		r.Code = api.ErrorCode()
		r.Error = api.ErrorMessage()
		if r.Error == "" {
			r.Error = r.Code
		}
	}

	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.Response != nil {
		r.HTTPStatus = resp.Response.StatusCode
		r.BucketRegion = resp.Response.Header.Get("X-Amz-Bucket-Region")
	}

	var reqID interface{ ServiceRequestID() string }
	if errors.As(err, &reqID) {
		r.RequestID = reqID.ServiceRequestID()
	}

	var netErr net.Error
	if r.Code == "" && (errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded)) {
		r.TimedOut = true
		if !strings.Contains(r.Error, "timeout") {
			r.Error = "timed out: " + r.Error
		}
	}
}
