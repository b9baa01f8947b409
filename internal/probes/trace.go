package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"golang.org/x/net/http/httpproxy"

	"github.com/pathagent/pathagent/internal/resolve"
)

// connectTimeout bounds one TCP connect. S3 answers a SYN within
// milliseconds from anywhere in its region; five seconds is long enough for
// a slow cross-region path and short enough that a dropped SYN (a network
// ACL, a blackhole) shows as a timeout well inside the probe's budget.
const connectTimeout = 5 * time.Second

// Resolver looks up the addresses of a name. *resolve.Resolver is one.
type Resolver interface {
	Lookup(ctx context.Context, name string) (*resolve.Result, error)
}

// Timings splits a probe's latency into phases. A phase that did not happen
// (no lookup for an address literal, no TLS over plain HTTP) is zero.
type Timings struct {
	Resolve   time.Duration `json:"resolve_seconds"`
	Connect   time.Duration `json:"connect_seconds"`
	TLS       time.Duration `json:"tls_seconds"`
	FirstByte time.Duration `json:"first_byte_seconds"`
	Total     time.Duration `json:"total_seconds"`
}

// trace records what happened on the wire for one request: the name looked
// up, the proxy chosen and the connection used. One trace belongs to one
// probe; the transport finds it in the request's context.
type trace struct {
	mu sync.Mutex

	start       time.Time
	host        string
	lookup      *resolve.Result
	lookupErr   error
	resolving   bool // a lookup started and has not returned
	proxy       *url.URL
	remote      netip.AddrPort
	dialErr     error
	resolveTime time.Duration

	connectStart, connectDone time.Time
	tlsStart, tlsDone         time.Time
	chain                     []string
	firstByte                 time.Time
}

type traceKey struct{}

// withTrace returns a context that carries t to the transport and to
// net/http's own trace hooks.
func withTrace(ctx context.Context, t *trace) context.Context {
	ctx = context.WithValue(ctx, traceKey{}, t)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart: func(_, _ string) { t.set(func() { t.connectStart = time.Now() }) },
		ConnectDone:  func(_, _ string, _ error) { t.set(func() { t.connectDone = time.Now() }) },
		TLSHandshakeStart: func() {
			t.set(func() { t.tlsStart = time.Now() })
		},
		TLSHandshakeDone: func(cs tls.ConnectionState, _ error) {
			t.set(func() {
				t.tlsDone = time.Now()
				t.chain = issuers(cs)
			})
		},
		GotConn: func(info httptrace.GotConnInfo) {
			// The address the connection really uses: what the path
			// is judged by. Through a proxy it is the proxy's.
			if ap, err := netip.ParseAddrPort(info.Conn.RemoteAddr().String()); err == nil {
				t.set(func() { t.remote = ap })
			}
		},
		GotFirstResponseByte: func() { t.set(func() { t.firstByte = time.Now() }) },
	})
}

func traceFrom(ctx context.Context) *trace {
	t, _ := ctx.Value(traceKey{}).(*trace)
	return t
}

func (t *trace) set(f func()) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
}

// timings turns the recorded instants into phase durations, ending at end.
func (t *trace) timings(end time.Time) Timings {
	t.mu.Lock()
	defer t.mu.Unlock()

	span := func(a, b time.Time) time.Duration {
		if a.IsZero() || b.IsZero() {
			return 0
		}
		return b.Sub(a)
	}
	return Timings{
		Resolve:   t.resolveTime,
		Connect:   span(t.connectStart, t.connectDone),
		TLS:       span(t.tlsStart, t.tlsDone),
		FirstByte: span(t.start, t.firstByte),
		Total:     end.Sub(t.start),
	}
}

// dialer connects to S3 by resolving names with the agent's own resolver, so
// the answer, its TTL and the resolver are known, and the address dialled is
// exactly one of the answers.
type dialer struct {
	resolver Resolver
	net      net.Dialer
}

func (d *dialer) DialContext(ctx context.Context, network, hostport string) (net.Conn, error) {
	t := traceFrom(ctx)

	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", hostport, err)
	}

	addr, err := netip.ParseAddr(host)
	if err != nil {
		addr, err = d.lookup(ctx, t, host)
		if err != nil {
			return nil, err
		}
	}

	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad port: %w", hostport, err)
	}
	target := netip.AddrPortFrom(addr, uint16(pn))

	conn, err := d.net.DialContext(ctx, network, target.String())
	if err != nil {
		// Record where the attempt went: a timeout or a refusal is
		// judged against the route for this address.
		t.set(func() {
			t.remote = target
			t.dialErr = err
		})
		return nil, err
	}
	return conn, nil
}

func (d *dialer) lookup(ctx context.Context, t *trace, host string) (netip.Addr, error) {
	start := time.Now()
	t.set(func() { t.resolving = true })
	res, err := d.resolver.Lookup(ctx, host)
	t.set(func() {
		t.resolving = false
		t.lookup = res
		t.lookupErr = err
		t.resolveTime = time.Since(start)
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}

	addr, ok := res.Pick()
	if !ok {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, errNoAddress)
	}
	return addr, nil
}

// newHTTPClient builds the client every probe request goes through: no
// connection reuse, so each probe makes the connection it measures and a
// route change shows at once; names resolved by the agent's resolver; the
// proxy taken from the environment as any HTTP client would, and noted.
//
// It extends base, the client the SDK's config loader built, when there is
// one: the loader applies AWS_CA_BUNDLE as an option of that client, and a
// client built from scratch would silently drop the bundle.
func newHTTPClient(base any, r Resolver, proxyEnv *httpproxy.Config) *awshttp.BuildableClient {
	d := &dialer{resolver: r, net: net.Dialer{Timeout: connectTimeout}}
	proxyFor := proxyEnv.ProxyFunc()

	b, ok := base.(*awshttp.BuildableClient)
	if !ok {
		b = awshttp.NewBuildableClient()
	}
	return b.WithTransportOptions(func(tr *http.Transport) {
		tr.DisableKeepAlives = true
		tr.DialContext = d.DialContext
		// The transport asks for every request, proxied or not, which
		// makes this the one place that sees the request's own host.
		tr.Proxy = func(req *http.Request) (*url.URL, error) {
			u, err := proxyFor(req.URL)
			t := traceFrom(req.Context())
			t.set(func() {
				t.host = req.URL.Hostname()
				t.proxy = u
			})
			return u, err
		}
	})
}

// issuers lists who vouches for the server's certificate: the issuer of
// each certificate the server sent and of the verified chain, each once,
// leaf's issuer first. An issuer is named by its organization, or by its
// common name when it has none (private authorities often do not).
func issuers(cs tls.ConnectionState) []string {
	var out []string
	add := func(c *x509.Certificate) {
		names := c.Issuer.Organization
		if len(names) == 0 && c.Issuer.CommonName != "" {
			names = []string{c.Issuer.CommonName}
		}
		for _, n := range names {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, c := range cs.PeerCertificates {
		add(c)
	}
	for _, chain := range cs.VerifiedChains {
		for _, c := range chain {
			add(c)
		}
	}
	return out
}
