// Package resolve looks names up at one chosen DNS server, the VPC
// resolver, and keeps what the answers say: addresses, TTLs, CNAMEs,
// response codes, transport and latency.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one query when Resolver.Timeout is zero. The VPC
// resolver answers in milliseconds, even on a recursive miss; two seconds
// is far beyond healthy and short enough not to stall a probe cycle.
const DefaultTimeout = 2 * time.Second

// ednsBufferSize is the UDP payload size we advertise: 1232 bytes fits
// one unfragmented packet on any common path (DNS flag day 2020).
const ednsBufferSize = 1232

// maxCNAMEs bounds the CNAME chain followed within one answer. S3 names
// chain at most a couple of links deep; a longer chain is a loop.
const maxCNAMEs = 8

// Transports a reply can come over, as recorded in Query.Transport.
const (
	UDP = "udp"
	TCP = "tcp"
)

// Errors a lookup can end with; test for them with errors.Is. The error
// returned wraps one of them and says which query failed.
var (
	// ErrNXDomain means the server answered that the name does not exist.
	ErrNXDomain = errors.New("name does not exist")

	// ErrServFail means the server answered SERVFAIL: it could not get
	// an answer, typically from upstream.
	ErrServFail = errors.New("server failure")

	// ErrRcode means the server answered with another error code, such
	// as REFUSED.
	ErrRcode = errors.New("error response code")

	// ErrNoData means the name exists but has no A or AAAA record.
	ErrNoData = errors.New("no address records")

	// ErrTimeout means no reply came before the timeout or the context
	// deadline.
	ErrTimeout = errors.New("timed out")

	// ErrMalformed means a reply came that could not be parsed or does
	// not answer the question asked.
	ErrMalformed = errors.New("malformed reply")

	// ErrNetwork means the query could not be sent or the reply not read,
	// for example because nothing listens at the server's address.
	ErrNetwork = errors.New("network error")
)

// Type is a record type Lookup asks for.
type Type uint16

// The record types Lookup asks for.
const (
	TypeA    = Type(dns.TypeA)
	TypeAAAA = Type(dns.TypeAAAA)
)

// String returns "A" or "AAAA".
func (t Type) String() string {
	return dns.TypeToString[uint16(t)]
}

// Resolver sends queries to one DNS server. The zero value is not usable:
// Server must be set.
type Resolver struct {
	// Server is the DNS server as host:port, for example "10.0.0.2:53".
	Server string

	// Timeout bounds each query, including its retry over TCP; zero means
	// DefaultTimeout. A context deadline that comes sooner wins.
	Timeout time.Duration

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Answer is one address record.
type Answer struct {
	Addr netip.Addr
	TTL  uint32 // seconds, as the server sent it
	Type Type
}

// Query is what happened to one of the two queries of a lookup.
type Query struct {
	Type Type

	// Replied reports whether a usable reply came; Rcode and Transport
	// mean something only when it is true.
	Replied bool

	// Rcode is the reply's response code, dns.RcodeSuccess (0) and so on.
	Rcode int

	// Transport is UDP, or TCP when the UDP reply was truncated.
	Transport string

	// Latency is from sending the query to the final reply, both
	// transports included.
	Latency time.Duration

	// Err is nil when the reply was NOERROR, even with no records.
	Err error
}

// RcodeName returns the response code as DNS spells it ("NOERROR",
// "NXDOMAIN"...), or "" when no reply came.
func (q Query) RcodeName() string {
	if !q.Replied {
		return ""
	}
	return dns.RcodeToString[q.Rcode]
}

// Result is what a lookup learned, whether or not it succeeded.
type Result struct {
	// Name is the name looked up, as the caller gave it.
	Name string

	// Server is the DNS server asked.
	Server string

	// CNAMEs is the alias chain from Name to the canonical name, in
	// order, without trailing dots; empty when Name is not an alias.
	CNAMEs []string

	// Addrs are the A answers, then the AAAA answers, in reply order.
	Addrs []Answer

	// A and AAAA tell how each query went.
	A    Query
	AAAA Query

	// Latency is the whole lookup; the two queries run concurrently.
	Latency time.Duration
}

// Lookup asks r.Server for the A and AAAA records of name, concurrently.
//
// The error is nil when at least one address came back, even if the other
// query failed: check Result.A.Err and Result.AAAA.Err for that. With no
// address, the error wraps the failed queries' errors, or ErrNoData when
// both said NOERROR. The Result is returned in every case but a missing
// server.
func (r *Resolver) Lookup(ctx context.Context, name string) (*Result, error) {
	if r.Server == "" {
		return nil, fmt.Errorf("lookup %s: no dns server set", name)
	}
	start := r.now()
	res := &Result{Name: name, Server: r.Server}
	fqdn := dns.Fqdn(name)

	var a, aaaa reply
	var wg sync.WaitGroup
	wg.Go(func() { a = r.query(ctx, fqdn, TypeA) })
	wg.Go(func() { aaaa = r.query(ctx, fqdn, TypeAAAA) })
	wg.Wait()

	res.A, res.AAAA = a.query, aaaa.query
	res.Latency = r.now().Sub(start)
	res.Addrs = append(a.addrs, aaaa.addrs...)

	// Both queries see the same chain from a sane server; prefer A's.
	res.CNAMEs = a.cnames
	if len(res.CNAMEs) == 0 {
		res.CNAMEs = aaaa.cnames
	}

	if len(res.Addrs) > 0 {
		return res, nil
	}
	// One line, not errors.Join's two: log lines stay whole.
	switch a, aaaa := res.A.Err, res.AAAA.Err; {
	case a != nil && aaaa != nil:
		return res, fmt.Errorf("%w; %w", a, aaaa)
	case a != nil:
		return res, a
	case aaaa != nil:
		return res, aaaa
	}
	return res, fmt.Errorf("lookup %s at %s: %w", name, r.Server, ErrNoData)
}

// DialOrder returns the addresses in the order to try them: IPv4 first,
// then IPv6, each in reply order, without repeats.
func (res *Result) DialOrder() []netip.Addr {
	if res == nil {
		return nil
	}
	var v4, v6 []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range res.Addrs {
		if seen[a.Addr] {
			continue
		}
		seen[a.Addr] = true
		if a.Addr.Is4() {
			v4 = append(v4, a.Addr)
		} else {
			v6 = append(v6, a.Addr)
		}
	}
	return append(v4, v6...)
}

// Pick returns the address to dial first, preferring IPv4, and reports
// whether there is one.
func (res *Result) Pick() (netip.Addr, bool) {
	order := res.DialOrder()
	if len(order) == 0 {
		return netip.Addr{}, false
	}
	return order[0], true
}

// reply is what one query learned.
type reply struct {
	query  Query
	cnames []string
	addrs  []Answer
}

// query asks for one type of name, over UDP and then TCP if the UDP
// reply was truncated.
func (r *Resolver) query(
	ctx context.Context,
	name string,
	t Type,
) (out reply) {
	out.query = Query{Type: t, Transport: UDP}
	start := r.now()
	defer func() { out.query.Latency = r.now().Sub(start) }()

	qctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()

	msg := new(dns.Msg)
	msg.SetQuestion(name, uint16(t))
	msg.SetEdns0(ednsBufferSize, false)

	in, err := r.exchange(qctx, UDP, msg)

	// A truncated reply lacks records; TCP has no size limit.
	if err == nil && in.Truncated {
		out.query.Transport = TCP
		in, err = r.exchange(qctx, TCP, msg)
	}
	if err == nil {
		err = matches(msg, in)
	}
	fail := func(err error) reply {
		out.query.Err = fmt.Errorf(
			"lookup %s %s at %s over %s: %w",
			t, strings.TrimSuffix(name, "."),
			r.Server, out.query.Transport, err,
		)
		return out
	}
	if err != nil {
		return fail(r.classify(ctx, qctx, err))
	}

	out.query.Replied = true
	out.query.Rcode = in.Rcode
	out.cnames, out.addrs, err = follow(name, t, in.Answer)
	if err != nil {
		return fail(err)
	}

	switch in.Rcode {
	case dns.RcodeSuccess:
		return out
	case dns.RcodeNameError:
		return fail(ErrNXDomain)
	case dns.RcodeServerFailure:
		return fail(ErrServFail)
	default:
		return fail(fmt.Errorf("%w %s", ErrRcode, dns.RcodeToString[in.Rcode]))
	}
}

// exchange sends msg over network and reads the reply.
func (r *Resolver) exchange(
	ctx context.Context,
	network string,
	msg *dns.Msg,
) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: r.timeout()}
	conn, err := c.DialContext(ctx, r.Server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	// miekg/dns honours the context's deadline but not its cancellation;
	// closing the connection ends the read that cancellation should end.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	in, _, err := c.ExchangeWithConnContext(ctx, msg, conn)
	return in, err
}

// matches checks that in answers the question msg asked. Over UDP the
// client already dropped replies with another id.
func matches(msg, in *dns.Msg) error {
	if !in.Response || in.Id != msg.Id {
		return fmt.Errorf("%w: not a reply to our query", ErrMalformed)
	}
	if len(in.Question) != 1 {
		return fmt.Errorf("%w: %d questions", ErrMalformed, len(in.Question))
	}
	q, want := in.Question[0], msg.Question[0]
	if q.Qtype != want.Qtype || !strings.EqualFold(q.Name, want.Name) {
		return fmt.Errorf("%w: answers %s %s", ErrMalformed,
			dns.TypeToString[q.Qtype], q.Name)
	}
	return nil
}

// classify wraps a failed exchange's error in the sentinel that says what
// kind of failure it was. When a context is done, that is the cause,
// whatever the socket said: ctx is the caller's, qctx the query's own.
func (r *Resolver) classify(ctx, qctx context.Context, err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return ctx.Err()
	case expired(ctx):
		return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
	case expired(qctx):
		return fmt.Errorf("%w: no reply within %v", ErrTimeout, r.timeout())
	}

	var netErr net.Error
	var dnsErr *dns.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	default:
		return fmt.Errorf("%w: %w", ErrNetwork, err)
	}
}

// follow walks the CNAME chain from name through answer and returns the
// chain and the records of type t owned by its last link.
func follow(
	name string,
	t Type,
	answer []dns.RR,
) ([]string, []Answer, error) {
	var chain []string
	owner := name
	for {
		target, ok := cnameOf(owner, answer)
		if !ok {
			break
		}
		if len(chain) == maxCNAMEs {
			return chain, nil, fmt.Errorf(
				"%w: cname chain longer than %d", ErrMalformed, maxCNAMEs)
		}
		chain = append(chain, strings.TrimSuffix(target, "."))
		owner = target
	}

	var addrs []Answer
	for _, rr := range answer {
		hdr := rr.Header()
		if Type(hdr.Rrtype) != t || !strings.EqualFold(hdr.Name, owner) {
			continue
		}
		var addr netip.Addr
		switch v := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(v.A)
			addr = a.Unmap()
		case *dns.AAAA:
			addr, _ = netip.AddrFromSlice(v.AAAA)
		}
		if !addr.IsValid() {
			continue
		}
		addrs = append(addrs, Answer{Addr: addr, TTL: hdr.Ttl, Type: t})
	}
	return chain, addrs, nil
}

// cnameOf returns the target of owner's CNAME in answer.
func cnameOf(owner string, answer []dns.RR) (string, bool) {
	for _, rr := range answer {
		c, ok := rr.(*dns.CNAME)
		if ok && strings.EqualFold(c.Hdr.Name, owner) {
			return c.Target, true
		}
	}
	return "", false
}

// expired reports whether ctx's deadline has passed. The socket's read
// deadline is the same instant, and may fire before ctx's own timer.
func expired(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(deadline)
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
