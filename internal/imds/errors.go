package imds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	awsimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

var (
	// ErrUnreachable means no connection to IMDS could be made: not on
	// EC2, a wrong endpoint, or a firewall or route in the way.
	ErrUnreachable = errors.New("imds unreachable")

	// ErrNoToken means IMDS was reached but gave no IMDSv2 session
	// token, and IMDSv1 was not allowed.
	ErrNoToken = errors.New("no imdsv2 session token")

	// ErrDisabled means the client refused to call IMDS, because of
	// AWS_EC2_METADATA_DISABLED=true.
	ErrDisabled = errors.New("imds disabled by AWS_EC2_METADATA_DISABLED")

	// ErrMissing means IMDS does not report an item the identity cannot
	// do without, such as the VPC id.
	ErrMissing = errors.New("item missing")
)

// noTokenHint names the usual causes of ErrNoToken and the fix for the
// first.
const noTokenHint = "usually a container behind the default token hop " +
	"limit of 1 (fix: aws ec2 modify-instance-metadata-options " +
	"--instance-id ID --http-put-response-hop-limit 2), " +
	"or IMDS turned off on the instance"

// tokenHeader carries the IMDSv2 token on metadata requests.
const tokenHeader = "X-Aws-Ec2-Metadata-Token"

// ParseError is an item whose value is not what it should be, for example
// a CIDR block that does not parse.
type ParseError struct {
	Path  string // metadata path, relative to /latest/meta-data/
	Value string
	Err   error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("imds: parse %s %q: %v", e.Path, e.Value, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// trace follows one operation through the SDK's middleware stack, to tell
// where it failed: before it started (client disabled), before its request
// left (token step) or after.
type trace struct {
	started bool

	// unreachable is set when the last request (token PUT or GET)
	// could not connect. The SDK cuts the error chain of a failed token
	// PUT, so this is seen in the HTTP client, not in the error.
	unreachable bool

	// sent is set once the request passed the token step; tokenless
	// when it then carried no token.
	sent      bool
	tokenless bool
}

// option adds the trace's middleware to one operation call.
func (t *trace) option(o *awsimds.Options) {
	o.APIOptions = append(o.APIOptions, t.install)
}

func (t *trace) install(st *middleware.Stack) error {
	start := middleware.InitializeMiddlewareFunc("pathagentTraceStart",
		func(
			ctx context.Context,
			in middleware.InitializeInput,
			next middleware.InitializeHandler,
		) (middleware.InitializeOutput, middleware.Metadata, error) {
			t.started = true

			// The SDK runs the token PUT with this same context, so
			// the HTTP client can find the trace there too.
			ctx = context.WithValue(ctx, traceKey{}, t)
			return next.HandleInitialize(ctx, in)
		})
	if err := st.Initialize.Add(start, middleware.Before); err != nil {
		return err
	}

	// Last in the finalize step, so after the SDK's token middleware:
	// reaching it means the token step is behind us.
	sent := middleware.FinalizeMiddlewareFunc("pathagentTraceSent",
		func(
			ctx context.Context,
			in middleware.FinalizeInput,
			next middleware.FinalizeHandler,
		) (middleware.FinalizeOutput, middleware.Metadata, error) {
			t.sent = true
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				t.tokenless = t.tokenless || req.Header.Get(tokenHeader) == ""
			}
			return next.HandleFinalize(ctx, in)
		})
	return st.Finalize.Add(sent, middleware.After)
}

// traceKey is the context key of the current operation's trace.
type traceKey struct{}

// tracingClient notes in the request's trace whether it could connect.
type tracingClient struct {
	c *http.Client
}

func (tc tracingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := tc.c.Do(req)
	if t, ok := req.Context().Value(traceKey{}).(*trace); ok {
		t.unreachable = err != nil && isDialError(err)
	}
	return resp, err
}

// classify wraps err from reading path with the sentinel that says what
// went wrong, judged by how far the operation got.
func (t *trace) classify(ctx context.Context, path string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("imds: read %s: %w", path, err)
	case !t.started:
		return fmt.Errorf("imds: read %s: %w", path, ErrDisabled)
	case t.unreachable || isDialError(err):
		return fmt.Errorf("imds: read %s: %w: %w", path, ErrUnreachable, err)
	case !t.sent:
		return fmt.Errorf("imds: read %s: %w (%s): %w", path, ErrNoToken, noTokenHint, err)
	}
	return fmt.Errorf("imds: read %s: %w", path, err)
}

// isDialError reports whether err is a failure to connect, as opposed to
// a connection that gave no (timely) answer.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isNotFound reports whether err is IMDS answering 404, its way of saying
// an item does not exist.
func isNotFound(err error) bool {
	var status interface{ HTTPStatusCode() int }
	return errors.As(err, &status) && status.HTTPStatusCode() == 404
}
