// Package faults makes the lab misbehave on demand, for tests of how the
// agent copes: a proxy in front of the S3 fronts, handlers wrapped around
// the EC2 API and the instance metadata service, and a DNS server that
// answers whatever bytes it is told to.
package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// readHeaderTimeout bounds a request's headers at the proxies; the agent
// sends them at once, so this only ends a broken client.
const readHeaderTimeout = 5 * time.Second

// S3Op is the kind of S3 request a fault applies to, told from the method
// and the path of a path-style request.
type S3Op string

// The requests the agent's probes make.
const (
	S3List   S3Op = "list"
	S3Put    S3Op = "put"
	S3Get    S3Op = "get"
	S3Delete S3Op = "delete"
)

// S3Fault is how the proxy answers one kind of request. The zero value
// passes the request through untouched. At most one field should be set.
type S3Fault struct {
	// Status, with Code, answers with an S3 error document instead of
	// forwarding; Region, when set, goes in x-amz-bucket-region.
	Status int
	Code   string
	Region string

	// Reset reads the request and closes the connection with a TCP
	// reset, before any answer.
	Reset bool

	// StallBody forwards the request, sends the real status, headers and
	// half the body, then nothing more until the client gives up.
	StallBody bool

	// Corrupt forwards the request and flips one byte of the body of a
	// successful answer, keeping its length.
	Corrupt bool

	// Hold forwards the request, so S3 acts on it, then keeps the answer
	// until the client gives up or Release is called. Held reports each
	// such request once S3 has answered it.
	Hold bool
}

// S3Proxy is an HTTP proxy in front of one S3 front. Faults are set per
// kind of request while it runs.
type S3Proxy struct {
	target string
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy

	// closing ends stalled and held answers when the proxy closes.
	closing chan struct{}
	release chan struct{}
	held    chan string

	mu     sync.Mutex
	faults map[S3Op]S3Fault
	seen   map[S3Op]int
}

// StartS3Proxy listens on listen (host:port, port 0 for any) and forwards
// to target, the host:port of an S3 front. Requests keep their Host
// header, so their signatures stay valid.
func StartS3Proxy(listen, target string) (*S3Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("start s3 fault proxy: %w", err)
	}
	p := &S3Proxy{
		target:  target,
		ln:      ln,
		closing: make(chan struct{}),
		release: make(chan struct{}),
		held:    make(chan string, 16),
		faults:  map[S3Op]S3Fault{},
		seen:    map[S3Op]int{},
	}
	to := &url.URL{Scheme: "http", Host: target}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Host = r.In.Host
		},
		// One connection per request, as the probes make, so nothing
		// idles once the test is over.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: readHeaderTimeout}
	go p.srv.Serve(ln)
	return p, nil
}

// Port is the port the proxy listens on.
func (p *S3Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Set makes requests of kind op meet f; the zero S3Fault heals them.
func (p *S3Proxy) Set(op S3Op, f S3Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == (S3Fault{}) {
		delete(p.faults, op)
		return
	}
	p.faults[op] = f
}

// Clear heals every kind of request.
func (p *S3Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.faults)
}

// Seen returns how many requests of kind op the proxy has received.
func (p *S3Proxy) Seen(op S3Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[op]
}

// Held delivers the path of each held request once S3 has answered it.
func (p *S3Proxy) Held() <-chan string { return p.held }

// Release lets every answer held so far go.
func (p *S3Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
}

// Close stops the proxy and ends every connection, stalled or held.
func (p *S3Proxy) Close() error {
	close(p.closing)
	return p.srv.Close()
}

// OpOf tells which probe request r is, from a path-style URL.
func OpOf(r *http.Request) S3Op {
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPut:
		return S3Put
	case r.Method == http.MethodDelete:
		return S3Delete
	case r.Method == http.MethodGet && key == "":
		return S3List
	}
	return S3Get
}

func (p *S3Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := OpOf(r)
	p.mu.Lock()
	f := p.faults[op]
	p.seen[op]++
	release := p.release
	p.mu.Unlock()

	switch {
	case f.Status != 0:
		io.Copy(io.Discard, r.Body)
		writeS3Error(w, f)
	case f.Reset:
		io.Copy(io.Discard, r.Body)
		reset(w)
	case f.StallBody, f.Corrupt, f.Hold:
		p.mangle(w, r, f, release)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// mangle forwards r and answers what S3 said, stalled, corrupted or held.
func (p *S3Proxy) mangle(w http.ResponseWriter, r *http.Request, f S3Fault, release chan struct{}) {
	rec := &recorder{header: http.Header{}}
	p.rp.ServeHTTP(rec, r)
	body := rec.body.Bytes()

	if f.Hold {
		select {
		case p.held <- r.URL.Path:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-p.closing:
			return
		}
	}
	if f.Corrupt && rec.status < 300 && len(body) > 0 {
		// S3 sends the object's CRC32 when the client asks for it, as
		// the SDK does by default; the lab's server does not, so the
		// proxy adds the one of what S3 sent, before the damage.
		if r.Header.Get("X-Amz-Checksum-Mode") == "ENABLED" && !hasChecksum(rec.header) {
			sum := crc32.ChecksumIEEE(body)
			rec.header.Set("X-Amz-Checksum-Crc32",
				base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum)))
		}
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0x20
	}

	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	if !f.StallBody {
		w.Write(body)
		return
	}
	w.Write(body[:len(body)/2])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	select {
	case <-r.Context().Done():
	case <-p.closing:
	}
}

func hasChecksum(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
			return true
		}
	}
	return false
}

// recorder keeps an answer so that it can be changed before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// writeS3Error answers as S3 does when it refuses a request.
func writeS3Error(w http.ResponseWriter, f S3Fault) {
	if f.Region != "" {
		w.Header().Set("X-Amz-Bucket-Region", f.Region)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", "FAULTPROXY0000001")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>%s</Code><Message>injected by the fault proxy</Message>`+
		`<RequestId>FAULTPROXY0000001</RequestId></Error>`, f.Code)
}

// reset closes the connection under w with a TCP reset.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faults: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// A zero linger makes close send RST instead of FIN.
		tc.SetLinger(0)
	}
	conn.Close()
}
