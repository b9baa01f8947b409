package resolve

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/faults"
)

// fuzzName is the name every fuzzed lookup asks for.
const fuzzName = "s3.us-east-1.amazonaws.com"

// fuzzTimeout bounds a query in the fuzz target: every reply comes at
// once from loopback, so the bound is only reached by a reply the client
// does not take as one.
const fuzzTimeout = 250 * time.Millisecond

// FuzzLookupReply answers a real Lookup's queries, over UDP and TCP, with
// arbitrary bytes (given the query's id, so the client reads them). The
// lookup must not panic or hang, must fail with one of the package's
// sentinel errors, and must only ever return addresses of the type asked.
func FuzzLookupReply(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xff})
	f.Add([]byte{0, 0, 0x83, 0x80})

	var reply atomic.Pointer[[]byte]
	srv, err := faults.StartDNS(func([]byte, bool) []byte { return *reply.Load() })
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	r := &Resolver{Server: srv.Addr(), Timeout: fuzzTimeout}

	f.Fuzz(func(t *testing.T, b []byte) {
		reply.Store(&b)
		res, err := r.Lookup(context.Background(), fuzzName)
		if res == nil {
			t.Fatalf("no result, err %v", err)
		}
		if err == nil && len(res.Addrs) == 0 {
			t.Error("success with no address")
		}
		if err != nil && !isSentinel(err) {
			t.Errorf("error %v wraps none of the package's errors", err)
		}
		if len(res.CNAMEs) > maxCNAMEs {
			t.Errorf("%d CNAMEs followed, at most %d allowed", len(res.CNAMEs), maxCNAMEs)
		}
		for _, a := range res.Addrs {
			ok := a.Type == TypeA && a.Addr.Is4() || a.Type == TypeAAAA && a.Addr.Is6()
			if !ok {
				t.Errorf("answer %+v: address of the wrong family", a)
			}
		}
		for _, q := range []Query{res.A, res.AAAA} {
			if q.Transport != UDP && q.Transport != TCP {
				t.Errorf("query %s: transport %q", q.Type, q.Transport)
			}
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range []error{
		ErrNXDomain, ErrServFail, ErrRcode, ErrNoData,
		ErrTimeout, ErrMalformed, ErrNetwork,
	} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzSeeds are well-formed replies of the shapes a resolver sends: an
// address, a CNAME chain, a loop, NXDOMAIN, a truncated reply.
func fuzzSeeds() []*dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(fuzzName), dns.TypeA)
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
	}
	reply := func(rrs ...dns.RR) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = rrs
		return m
	}
	fq := dns.Fqdn(fuzzName)

	a := reply(&dns.A{Hdr: hdr(fq, dns.TypeA), A: net.IPv4(127, 52, 216, 10)})
	chain := reply(
		&dns.CNAME{Hdr: hdr(fq, dns.TypeCNAME), Target: "s3-1.amazonaws.com."},
		&dns.A{Hdr: hdr("s3-1.amazonaws.com.", dns.TypeA), A: net.IPv4(127, 52, 216, 11)},
	)
	loop := reply(
		&dns.CNAME{Hdr: hdr(fq, dns.TypeCNAME), Target: "a.lab."},
		&dns.CNAME{Hdr: hdr("a.lab.", dns.TypeCNAME), Target: fq},
	)
	aaaa := reply(&dns.AAAA{Hdr: hdr(fq, dns.TypeAAAA), AAAA: net.ParseIP("::1")})
	nx := reply()
	nx.Rcode = dns.RcodeNameError
	tc := reply()
	tc.Truncated = true
	return []*dns.Msg{a, chain, loop, aaaa, nx, tc}
}
