package s3lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// acceptBackoff spaces out retries after an accept error that is not a
// closed listener, such as running out of file descriptors, so that the
// loop does not spin.
const acceptBackoff = 50 * time.Millisecond

// route is one front: the address it listens on, the address its
// outgoing connections come from, and the versitygw it forwards to.
type route struct {
	address string
	source  string
	target  string

	// elsewhere maps the buckets of other regions to their region: a
	// request for one is answered with S3's redirect, not forwarded.
	elsewhere map[string]string

	// presented maps buckets to the policy document GetBucketPolicy
	// returns, where it differs from the one versitygw enforces (see
	// scenario.Bucket.LabPolicy).
	presented map[string]string
}

// forwarder listens on every front and copies each connection to its
// versitygw, dialled from the front's source address so that the server
// sees the client address the network path implies.
type forwarder struct {
	port      int
	listeners []net.Listener

	// ctx is cancelled by close, aborting dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	// wg counts accept loops and connection handlers.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// openFronts listens on every route's address, all on one port, and starts
// forwarding. The port is the one the kernel picks for the first address;
// if another address already has it taken, all are closed and a new port
// is tried.
func openFronts(routes []route) (*forwarder, error) {
	sources := make([]*net.TCPAddr, len(routes))
	seen := make(map[string]bool)
	for i, r := range routes {
		if seen[r.address] {
			return nil, fmt.Errorf("open s3 fronts: address %s used twice", r.address)
		}
		seen[r.address] = true

		src, err := netip.ParseAddr(r.source)
		if err != nil {
			return nil, fmt.Errorf("open s3 front %s: source: %w", r.address, err)
		}
		sources[i] = &net.TCPAddr{IP: src.AsSlice()}
	}

	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[net.Conn]struct{}),
	}
	if len(routes) == 0 {
		return f, nil
	}

	var err error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		f.listeners, err = listenAll(routes)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	f.port = f.listeners[0].Addr().(*net.TCPAddr).Port

	for i, ln := range f.listeners {
		f.wg.Add(1)
		go f.serve(ln, sources[i], routes[i])
	}
	return f, nil
}

// listenAll binds the first address to a kernel-chosen port and the others
// to the same port. On error nothing is left open.
func listenAll(routes []route) ([]net.Listener, error) {
	var lns []net.Listener
	port := "0"
	for _, r := range routes {
		ln, err := net.Listen("tcp", net.JoinHostPort(r.address, port))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("open s3 front %s: %w", r.address, err)
		}
		lns = append(lns, ln)
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	return lns, nil
}

// serve accepts connections until the listener is closed.
func (f *forwarder) serve(ln net.Listener, source *net.TCPAddr, r route) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(acceptBackoff)
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}

		// Adding while serve itself is counted keeps the counter above
		// zero, which is what makes Add safe alongside close's Wait.
		f.wg.Add(1)
		go f.forward(c, source, r)
	}
}

// forward dials the target from source and copies bytes both ways until
// both sides have finished sending, passing each half-close on.
func (f *forwarder) forward(client net.Conn, source *net.TCPAddr, r route) {
	defer f.wg.Done()
	defer f.untrackClose(client)

	// A request for a bucket of another region gets S3's redirect. Only
	// a connection's first request is looked at: enough for clients that
	// open a connection per request, as the agent's probes do.
	in := bufio.NewReaderSize(client, requestLineMax)
	if len(r.elsewhere) > 0 || len(r.presented) > 0 {
		method, bucket, query := firstRequest(client, in)
		if region, ok := r.elsewhere[bucket]; ok {
			writeRedirect(client, method, bucket, region)
			return
		}
		if doc, ok := r.presented[bucket]; ok && method == "GET" && query.Has("policy") {
			writePolicy(client, doc)
			return
		}
	}

	d := net.Dialer{LocalAddr: source, Timeout: dialTimeout}
	server, err := d.DialContext(f.ctx, "tcp", r.target)
	if err != nil {
		// The client sees its connection closed, as it would if the
		// server refused it.
		return
	}
	if !f.track(server) {
		server.Close()
		return
	}
	defer f.untrackClose(server)

	done := make(chan error, 2)
	go func() { done <- pipe(server, in) }()
	go func() { done <- pipe(client, server) }()
	for range 2 {
		if err := <-done; err != nil {
			// A broken side cannot finish its half: close both so
			// that the other copy returns too.
			client.Close()
			server.Close()
		}
	}
}

// pipe copies src to dst, then closes dst for writing so that its peer
// sees the end of the stream while the other direction goes on.
func pipe(dst net.Conn, src io.Reader) error {
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if hc, ok := dst.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}

// track records a connection so that close can end it; it reports false
// once the forwarder is closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrackClose(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// close stops accepting, ends every open connection and waits for every
// goroutine of the forwarder.
func (f *forwarder) close() error {
	f.closeOnce.Do(func() {
		f.cancel()

		var errs []error
		for _, ln := range f.listeners {
			if err := ln.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close s3 front: %w", err))
			}
		}

		f.mu.Lock()
		f.closed = true
		open := make([]net.Conn, 0, len(f.conns))
		for c := range f.conns {
			open = append(open, c)
		}
		f.mu.Unlock()
		for _, c := range open {
			c.Close()
		}

		f.wg.Wait()
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}
