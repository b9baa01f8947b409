// Package dnsserver is the lab's VPC resolver: an authoritative DNS server
// on a loopback address that answers a scenario's names over UDP and TCP.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// listenAttempts bounds the tries to find a port free on both UDP and
// TCP when the caller asks for port 0. The kernel picks a free UDP port;
// the same TCP port is almost always free too, so a few tries suffice.
const listenAttempts = 10

// shutdownTimeout bounds how long Close waits for queries in flight. The
// handler never blocks, so anything longer means a stuck client.
const shutdownTimeout = 2 * time.Second

// Fault makes the server misbehave for one name, so that tests can see
// how a client copes. The zero Fault is normal behaviour.
type Fault struct {
	// Rcode, when non-zero, is returned with an empty answer, for
	// example dns.RcodeServerFailure.
	Rcode int

	// Truncate answers UDP queries with the TC bit set and no records;
	// TCP queries are answered in full.
	Truncate bool

	// Drop never answers, on either transport.
	Drop bool
}

// Server answers DNS queries from a set of scenario records. Its methods
// are safe for concurrent use.
type Server struct {
	udp *dns.Server
	tcp *dns.Server

	mu     sync.RWMutex
	zone   *zone
	faults map[string]Fault

	closeOnce sync.Once
	closeErr  error
}

// Start listens on addr, a loopback host:port, over UDP and TCP on the
// same port, and answers from records. Port 0 picks a free port; Addr
// tells which.
func Start(addr string, records []scenario.Record) (*Server, error) {
	if _, err := newZone(records); err != nil {
		return nil, fmt.Errorf("start dns server: %w", err)
	}
	pc, ln, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("start dns server: %w", err)
	}
	return Serve(pc, ln, records)
}

// Serve answers from records on a UDP socket and a TCP listener the
// caller opened, for a resolver on an address Start refuses, such as a
// VPC address inside a network namespace. The server owns both from then
// on: Close closes them.
func Serve(pc net.PacketConn, ln net.Listener, records []scenario.Record) (*Server, error) {
	z, err := newZone(records)
	if err != nil {
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("start dns server: %w", err)
	}

	s := &Server{zone: z, faults: map[string]Fault{}}
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}

	// Wait until both loops run: a Shutdown before that would find the
	// server "not started" and leave it serving forever.
	var started sync.WaitGroup
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go srv.ActivateAndServe()
	}
	started.Wait()
	return s, nil
}

// listen opens a UDP socket and a TCP listener on one loopback port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("parse listen address %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, nil, fmt.Errorf("listen on %s: not a loopback address", addr)
	}

	attempts := 1
	if ap.Port() == 0 {
		attempts = listenAttempts
	}
	var lastErr error
	for range attempts {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}

		// Another process may hold the TCP side of the port the kernel
		// gave us for UDP; then let it pick again.
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		lastErr = fmt.Errorf("listen tcp %s: %w", pc.LocalAddr(), err)
		pc.Close()
	}
	return nil, nil, lastErr
}

// Addr returns the host:port the server listens on, for UDP and TCP.
func (s *Server) Addr() string {
	return s.udp.PacketConn.LocalAddr().String()
}

// SetRecords replaces every record at once; queries already being
// answered finish with the old set.
func (s *Server) SetRecords(records []scenario.Record) error {
	z, err := newZone(records)
	if err != nil {
		return fmt.Errorf("set dns records: %w", err)
	}
	s.mu.Lock()
	s.zone = z
	s.mu.Unlock()
	return nil
}

// SetFault makes queries for exactly name (no wildcards, any case)
// misbehave as f says. The zero Fault restores normal answers.
func (s *Server) SetFault(name string, f Fault) {
	name = canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, name)
		return
	}
	s.faults[name] = f
}

// Close stops both listeners and waits briefly for queries in flight.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(
			context.Background(),
			shutdownTimeout,
		)
		defer cancel()
		s.closeErr = errors.Join(
			s.udp.ShutdownContext(ctx),
			s.tcp.ShutdownContext(ctx),
		)
	})
	if s.closeErr != nil {
		return fmt.Errorf("close dns server: %w", s.closeErr)
	}
	return nil
}

// serve answers one query.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	reply := s.answer(req, isUDP(w))
	if reply == nil {
		return
	}

	// A failed write looks to the client like a lost reply, which is
	// what it is; there is no one else to tell.
	_ = w.WriteMsg(reply)
}

// answer builds the reply to req, or returns nil when the query is to
// go unanswered.
func (s *Server) answer(req *dns.Msg, udp bool) *dns.Msg {
	reply := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return reply.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return reply.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]

	s.mu.RLock()
	z, fault := s.zone, s.faults[canonical(q.Name)]
	s.mu.RUnlock()

	if fault.Drop {
		return nil
	}
	reply.SetReply(req)
	reply.Authoritative = true
	if fault.Rcode != 0 {
		reply.Rcode = fault.Rcode
		return finish(req, reply, udp)
	}

	e := z.find(q.Name)
	if e == nil {
		reply.Rcode = dns.RcodeNameError
		return finish(req, reply, udp)
	}
	reply.Answer = records(q, e)

	if fault.Truncate && udp {
		reply.Answer = nil
		reply.Truncated = true
	}
	return finish(req, reply, udp)
}

// records returns e's records of the asked type, owned by the name as
// asked (resolvers may check that the case they sent comes back).
func records(q dns.Question, e *entry) []dns.RR {
	hdr := dns.RR_Header{
		Name:   q.Name,
		Rrtype: q.Qtype,
		Class:  dns.ClassINET,
		Ttl:    e.ttl,
	}
	var out []dns.RR
	switch q.Qtype {
	case dns.TypeA:
		for _, a := range e.a {
			out = append(out, &dns.A{Hdr: hdr, A: a.AsSlice()})
		}
	case dns.TypeAAAA:
		for _, a := range e.aaaa {
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return out
}

// finish mirrors EDNS0 and, over UDP, trims the reply to what the client
// said it can receive, setting TC when records had to go.
func finish(req, reply *dns.Msg, udp bool) *dns.Msg {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		reply.SetEdns0(opt.UDPSize(), false)
	}
	if udp {
		reply.Truncate(size)
	}
	return reply
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.UDPAddr)
	return ok
}
