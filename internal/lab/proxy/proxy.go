// Package proxy is the lab's HTTP forward proxy: it stands for the corporate
// proxy that HTTPS_PROXY points an instance at, and resolves names with the
// lab's resolver, so that nothing it forwards can leave the lab.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/pathagent/pathagent/internal/resolve"
)

// dialTimeout bounds the proxy's connection to a lab server, which answers
// at once when it exists.
const dialTimeout = 5 * time.Second

// hopHeaders are the headers of one connection, not of the request; a
// proxy drops them.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Proxy is a running forward proxy.
type Proxy struct {
	srv  *http.Server
	addr string
}

// Start listens on addr (a loopback host:port; port 0 picks one) and
// forwards plain-HTTP requests in absolute form, resolving their hosts with
// the DNS server at resolver. CONNECT is refused: the lab speaks HTTP.
func Start(addr, resolver string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("start proxy: %s is not a loopback address", host)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}

	r := &resolve.Resolver{Server: resolver}
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			return dial(ctx, r, network, hostport)
		},
	}
	p := &Proxy{addr: ln.Addr().String()}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { forward(tr, w, req) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's address as HTTP_PROXY takes it.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// dial connects to hostport, resolving the host with the lab resolver and
// refusing any answer outside loopback.
func dial(ctx context.Context, r *resolve.Resolver, network, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		res, err := r.Lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		var ok bool
		if addr, ok = res.Pick(); !ok {
			return nil, fmt.Errorf("no address for %s", host)
		}
	}
	if !addr.IsLoopback() {
		return nil, fmt.Errorf("proxy: %s is outside the lab", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: dialTimeout}
	return d.DialContext(ctx, network, netip.AddrPortFrom(addr, uint16(n)).String())
}

func forward(tr *http.Transport, w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodConnect || !req.URL.IsAbs() {
		http.Error(w, "this lab proxy forwards plain HTTP requests in absolute form only", http.StatusMethodNotAllowed)
		return
	}

	out := req.Clone(req.Context())
	out.RequestURI = ""
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}

	resp, err := tr.RoundTrip(out)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		http.Error(w, "proxy: "+err.Error(), status)
		return
	}
	defer resp.Body.Close()

	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
