package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// testTimeout bounds a lookup that should succeed; loopback answers in
// microseconds, so reaching it means something hangs.
const testTimeout = 5 * time.Second

var labRecords = []scenario.Record{
	{Name: "s3.us-east-1.amazonaws.com", A: []string{"127.52.216.10"}},
	{Name: "*.s3.us-east-1.amazonaws.com", A: []string{"127.52.216.11"}},
	{
		Name: "dual.lab",
		A:    []string{"127.0.0.7", "127.0.0.8"},
		AAAA: []string{"::1"},
		TTL:  30,
	},
	{Name: "empty.lab"},
	{Name: "broken.lab", A: []string{"127.0.0.9"}},
	{Name: "refused.lab", A: []string{"127.0.0.9"}},
}

// startLab starts the lab DNS server with labRecords and returns it and
// a resolver pointed at it.
func startLab(t *testing.T) (*dnsserver.Server, *Resolver) {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0", labRecords)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &Resolver{Server: s.Addr(), Timeout: testTimeout}
}

// startHandler serves h over UDP on loopback, for replies the lab server
// cannot give.
func startHandler(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var started sync.WaitGroup
	started.Add(1)
	srv := &dns.Server{
		PacketConn:        pc,
		Handler:           h,
		NotifyStartedFunc: started.Done,
	}
	go srv.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// describe renders answers as "addr type ttl" for comparison.
func describe(as []Answer) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %s %d", a.Addr, a.Type, a.TTL))
	}
	return out
}

func TestLookup(t *testing.T) {
	s, r := startLab(t)
	s.SetFault("broken.lab", dnsserver.Fault{Rcode: dns.RcodeServerFailure})
	s.SetFault("refused.lab", dnsserver.Fault{Rcode: dns.RcodeRefused})

	tests := []struct {
		name      string
		lookup    string
		want      []string // describe(res.Addrs)
		wantA     string   // RcodeName of the A query
		wantAAAA  string
		wantErr   error
		wantError string // exact text, when set
	}{
		{
			name:     "a only, default ttl",
			lookup:   "s3.us-east-1.amazonaws.com",
			want:     []string{"127.52.216.10 A 60"},
			wantA:    "NOERROR",
			wantAAAA: "NOERROR",
		},
		{
			name:     "a and aaaa",
			lookup:   "dual.lab",
			want:     []string{"127.0.0.7 A 30", "127.0.0.8 A 30", "::1 AAAA 30"},
			wantA:    "NOERROR",
			wantAAAA: "NOERROR",
		},
		{
			name:     "wildcard",
			lookup:   "lab-data.s3.us-east-1.amazonaws.com",
			want:     []string{"127.52.216.11 A 60"},
			wantA:    "NOERROR",
			wantAAAA: "NOERROR",
		},
		{
			name:     "nxdomain",
			lookup:   "s3.us-west-2.amazonaws.com",
			wantA:    "NXDOMAIN",
			wantAAAA: "NXDOMAIN",
			wantErr:  ErrNXDomain,
			wantError: "lookup A s3.us-west-2.amazonaws.com at " + r.Server +
				" over udp: name does not exist; " +
				"lookup AAAA s3.us-west-2.amazonaws.com at " + r.Server +
				" over udp: name does not exist",
		},
		{
			name:     "servfail",
			lookup:   "broken.lab",
			wantA:    "SERVFAIL",
			wantAAAA: "SERVFAIL",
			wantErr:  ErrServFail,
		},
		{
			name:     "refused",
			lookup:   "refused.lab",
			wantA:    "REFUSED",
			wantAAAA: "REFUSED",
			wantErr:  ErrRcode,
		},
		// The name exists, so both queries say NOERROR, with nothing.
		{
			name:      "no data",
			lookup:    "empty.lab",
			wantA:     "NOERROR",
			wantAAAA:  "NOERROR",
			wantErr:   ErrNoData,
			wantError: "lookup empty.lab at " + r.Server + ": no address records",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Lookup(context.Background(), tt.lookup)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantError != "" && err.Error() != tt.wantError {
				t.Errorf("err text = %q, want %q", err, tt.wantError)
			}
			if got := describe(res.Addrs); !slices.Equal(got, tt.want) {
				t.Errorf("addrs = %v, want %v", got, tt.want)
			}
			if got := res.A.RcodeName(); got != tt.wantA {
				t.Errorf("A rcode = %s, want %s", got, tt.wantA)
			}
			if got := res.AAAA.RcodeName(); got != tt.wantAAAA {
				t.Errorf("AAAA rcode = %s, want %s", got, tt.wantAAAA)
			}
			if res.Name != tt.lookup || res.Server != r.Server {
				t.Errorf("name, server = %s, %s", res.Name, res.Server)
			}
			if res.A.Transport != UDP {
				t.Errorf("A came over %s, want udp", res.A.Transport)
			}
			if res.Latency <= 0 || res.A.Latency <= 0 || res.AAAA.Latency <= 0 {
				t.Errorf("latency %v, A %v, AAAA %v",
					res.Latency, res.A.Latency, res.AAAA.Latency)
			}
		})
	}
}

func TestLookupTimeout(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration // Resolver.Timeout
		ctxTimeout time.Duration
		wantCtxErr bool // the caller's deadline is in the chain
	}{
		{
			name:       "context deadline first",
			timeout:    testTimeout,
			ctxTimeout: 200 * time.Millisecond,
			wantCtxErr: true,
		},
		{
			name:       "resolver timeout first",
			timeout:    200 * time.Millisecond,
			ctxTimeout: testTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r := startLab(t)
			s.SetFault("dual.lab", dnsserver.Fault{Drop: true})
			r.Timeout = tt.timeout

			ctx, cancel := context.WithTimeout(t.Context(), tt.ctxTimeout)
			defer cancel()
			start := time.Now()
			res, err := r.Lookup(ctx, "dual.lab")
			elapsed := time.Since(start)

			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.wantCtxErr {
				t.Errorf("errors.Is(err, DeadlineExceeded) = %v", got)
			}
			// Both queries wait concurrently: one timeout, not two.
			if elapsed > time.Second {
				t.Errorf("lookup took %v, past the 200ms deadline", elapsed)
			}
			if res == nil || res.A.Replied || res.AAAA.Replied {
				t.Errorf("result = %+v, want no replies", res)
			}
		})
	}
}

func TestLookupCanceled(t *testing.T) {
	s, r := startLab(t)
	s.SetFault("dual.lab", dnsserver.Fault{Drop: true})

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Lookup(ctx, "dual.lab")

	// Cancellation is the caller's choice, not the server's timeout.
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want context.Canceled only", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("lookup took %v after cancel", elapsed)
	}
}

func TestLookupTruncated(t *testing.T) {
	// 120 A records need about 2 KB, more than our EDNS0 buffer.
	var many []string
	for i := range 120 {
		many = append(many, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1))
	}
	records := append(slices.Clone(labRecords),
		scenario.Record{Name: "many.lab", A: many})

	tests := []struct {
		name      string
		lookup    string
		fault     dnsserver.Fault
		wantAddrs int
	}{
		{
			name:      "fault sets tc",
			lookup:    "dual.lab",
			fault:     dnsserver.Fault{Truncate: true},
			wantAddrs: 3,
		},
		{
			name:      "answer too big for udp",
			lookup:    "many.lab",
			wantAddrs: 120,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r := startLab(t)
			if err := s.SetRecords(records); err != nil {
				t.Fatal(err)
			}
			s.SetFault(tt.lookup, tt.fault)

			res, err := r.Lookup(context.Background(), tt.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if res.A.Transport != TCP {
				t.Errorf("A came over %s, want tcp", res.A.Transport)
			}
			if len(res.Addrs) != tt.wantAddrs {
				t.Errorf("got %d addresses, want %d", len(res.Addrs), tt.wantAddrs)
			}
		})
	}
}

// cnameHandler answers www.lab. through a two-link chain, loop.lab.
// through a CNAME loop, and half.lab. with an A but a SERVFAIL for AAAA.
func cnameHandler(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	q := req.Question[0]
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		return r
	}
	switch q.Name {
	case "www.lab.":
		m.Answer = []dns.RR{
			rr("www.lab. 300 IN CNAME Edge.lab."),
			rr("edge.lab. 60 IN CNAME s3-1-w.lab."),
		}
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer,
				rr("unrelated.lab. 9 IN A 127.0.0.99"),
				rr("s3-1-w.lab. 5 IN A 127.52.216.10"))
		}
	case "loop.lab.":
		m.Answer = []dns.RR{
			rr("loop.lab. 60 IN CNAME loop2.lab."),
			rr("loop2.lab. 60 IN CNAME loop.lab."),
		}
	case "half.lab.":
		if q.Qtype == dns.TypeA {
			m.Answer = []dns.RR{rr("half.lab. 60 IN A 127.0.0.5")}
		} else {
			m.Rcode = dns.RcodeServerFailure
		}
	case "wrong.lab.":
		m.Question[0].Name = "other.lab."
	}
	w.WriteMsg(m)
}

func TestLookupCNAME(t *testing.T) {
	r := &Resolver{
		Server:  startHandler(t, cnameHandler),
		Timeout: testTimeout,
	}

	res, err := r.Lookup(context.Background(), "www.lab")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Edge.lab", "s3-1-w.lab"}; !slices.Equal(res.CNAMEs, want) {
		t.Errorf("cnames = %q, want %q", res.CNAMEs, want)
	}
	// Only the chain's end counts, not other records in the answer.
	if got, want := describe(res.Addrs), []string{"127.52.216.10 A 5"}; !slices.Equal(got, want) {
		t.Errorf("addrs = %v, want %v", got, want)
	}
}

func TestLookupBadReplies(t *testing.T) {
	r := &Resolver{
		Server:  startHandler(t, cnameHandler),
		Timeout: testTimeout,
	}
	tests := []struct {
		name    string
		lookup  string
		wantErr error
	}{
		{name: "cname loop", lookup: "loop.lab", wantErr: ErrMalformed},
		{name: "wrong question", lookup: "wrong.lab", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Lookup(context.Background(), tt.lookup)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A failed AAAA query does not fail a lookup that found an IPv4 address,
// but it is on record.
func TestLookupPartial(t *testing.T) {
	r := &Resolver{
		Server:  startHandler(t, cnameHandler),
		Timeout: testTimeout,
	}
	res, err := r.Lookup(context.Background(), "half.lab")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.AAAA.Err, ErrServFail) || res.A.Err != nil {
		t.Errorf("A err = %v, AAAA err = %v", res.A.Err, res.AAAA.Err)
	}
}

// garbageServer answers every query with its id and flags followed by
// bytes that do not parse.
func garbageServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 2 {
				continue
			}
			// Id, QR set, one question, then a label that runs off the end.
			reply := []byte{buf[0], buf[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 40, 'x'}
			pc.WriteTo(reply, from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestLookupTransportErrors(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()

	tests := []struct {
		name    string
		server  string
		wantErr error
	}{
		{name: "garbage reply", server: garbageServer(t), wantErr: ErrMalformed},
		{name: "nothing listening", server: closed, wantErr: ErrNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Server: tt.server, Timeout: time.Second}
			res, err := r.Lookup(context.Background(), "dual.lab")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if res == nil || res.A.Replied {
				t.Errorf("result = %+v, want one without a reply", res)
			}
		})
	}
}

func TestLookupNoServer(t *testing.T) {
	_, err := (&Resolver{}).Lookup(context.Background(), "dual.lab")
	want := "lookup dual.lab: no dns server set"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestDialOrder(t *testing.T) {
	a := func(s string, t Type) Answer {
		return Answer{Addr: netip.MustParseAddr(s), TTL: 60, Type: t}
	}
	tests := []struct {
		name     string
		addrs    []Answer
		want     []string
		wantPick string // "" when there is nothing to pick
	}{
		{name: "empty"},
		{
			name:     "ipv4 before ipv6",
			addrs:    []Answer{a("::1", TypeAAAA), a("127.0.0.2", TypeA), a("127.0.0.1", TypeA)},
			want:     []string{"127.0.0.2", "127.0.0.1", "::1"},
			wantPick: "127.0.0.2",
		},
		{
			name:     "ipv6 only",
			addrs:    []Answer{a("::1", TypeAAAA)},
			want:     []string{"::1"},
			wantPick: "::1",
		},
		{
			name:     "repeats dropped",
			addrs:    []Answer{a("127.0.0.1", TypeA), a("127.0.0.1", TypeA)},
			want:     []string{"127.0.0.1"},
			wantPick: "127.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{Addrs: tt.addrs}
			var got []string
			for _, addr := range res.DialOrder() {
				got = append(got, addr.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("DialOrder() = %v, want %v", got, tt.want)
			}
			pick, ok := res.Pick()
			if ok != (tt.wantPick != "") || (ok && pick.String() != tt.wantPick) {
				t.Errorf("Pick() = %v, %v, want %q", pick, ok, tt.wantPick)
			}
		})
	}
}
