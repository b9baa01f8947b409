package dnsserver

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// queryTimeout is generous for loopback, where answers take microseconds.
const queryTimeout = 2 * time.Second

var labRecords = []scenario.Record{
	{Name: "s3.us-east-1.amazonaws.com", A: []string{"127.52.216.10"}},
	{Name: "*.s3.us-east-1.amazonaws.com", A: []string{"127.52.216.10"}},
	{Name: "dual.lab", A: []string{"127.0.0.7"}, AAAA: []string{"::1"}, TTL: 30},
	{Name: "empty.lab"},
}

func start(t *testing.T, records []scenario.Record) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", records)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func ask(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: queryTimeout}
	in, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return in
}

func TestServe(t *testing.T) {
	s := start(t, labRecords)

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int
		wantAns   []string // addresses in order
		wantTTL   uint32
	}{
		{
			name:      "exact a",
			qname:     "s3.us-east-1.amazonaws.com",
			qtype:     dns.TypeA,
			wantRcode: dns.RcodeSuccess,
			wantAns:   []string{"127.52.216.10"},
			wantTTL:   60,
		},
		{
			name:      "wildcard a",
			qname:     "Lab-Data.s3.us-east-1.amazonaws.com",
			qtype:     dns.TypeA,
			wantRcode: dns.RcodeSuccess,
			wantAns:   []string{"127.52.216.10"},
			wantTTL:   60,
		},
		{
			name:      "aaaa",
			qname:     "dual.lab",
			qtype:     dns.TypeAAAA,
			wantRcode: dns.RcodeSuccess,
			wantAns:   []string{"::1"},
			wantTTL:   30,
		},
		// The name exists but has no AAAA: NODATA, not NXDOMAIN.
		{
			name:      "nodata",
			qname:     "s3.us-east-1.amazonaws.com",
			qtype:     dns.TypeAAAA,
			wantRcode: dns.RcodeSuccess,
		},
		{
			name:      "nodata other type",
			qname:     "empty.lab",
			qtype:     dns.TypeTXT,
			wantRcode: dns.RcodeSuccess,
		},
		{
			name:      "nxdomain",
			qname:     "s3.us-west-2.amazonaws.com",
			qtype:     dns.TypeA,
			wantRcode: dns.RcodeNameError,
		},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				in := ask(t, s, network, tt.qname, tt.qtype)
				if in.Rcode != tt.wantRcode {
					t.Errorf("rcode = %s, want %s",
						dns.RcodeToString[in.Rcode],
						dns.RcodeToString[tt.wantRcode])
				}
				if !in.Authoritative {
					t.Error("reply is not authoritative")
				}
				if got := addrs(in); !slices.Equal(got, tt.wantAns) {
					t.Errorf("answer = %v, want %v", got, tt.wantAns)
				}
				for _, rr := range in.Answer {
					if rr.Header().Ttl != tt.wantTTL {
						t.Errorf("ttl = %d, want %d", rr.Header().Ttl, tt.wantTTL)
					}
				}
			})
		}
	}
}

func TestSetRecords(t *testing.T) {
	s := start(t, labRecords)

	err := s.SetRecords([]scenario.Record{
		{Name: "s3.us-east-1.amazonaws.com", A: []string{"127.54.231.5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := ask(t, s, "udp", "s3.us-east-1.amazonaws.com", dns.TypeA)
	if got := addrs(in); !slices.Equal(got, []string{"127.54.231.5"}) {
		t.Errorf("after SetRecords answer = %v", got)
	}

	// A bad set leaves the old one in place.
	bad := []scenario.Record{{Name: "x.lab", A: []string{"nope"}}}
	if err := s.SetRecords(bad); err == nil {
		t.Error("SetRecords accepted a bad address")
	}
	in = ask(t, s, "udp", "s3.us-east-1.amazonaws.com", dns.TypeA)
	if got := addrs(in); !slices.Equal(got, []string{"127.54.231.5"}) {
		t.Errorf("after bad SetRecords answer = %v", got)
	}
}

func TestFaults(t *testing.T) {
	s := start(t, labRecords)
	const name = "dual.lab"

	s.SetFault(name, Fault{Rcode: dns.RcodeServerFailure})
	if in := ask(t, s, "udp", name, dns.TypeA); in.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode fault: got %s", dns.RcodeToString[in.Rcode])
	}

	s.SetFault("DUAL.lab.", Fault{Truncate: true})
	udp := ask(t, s, "udp", name, dns.TypeA)
	if !udp.Truncated || len(udp.Answer) != 0 {
		t.Errorf("truncate fault over udp: tc=%v answer=%v", udp.Truncated, udp.Answer)
	}
	tcp := ask(t, s, "tcp", name, dns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != 1 {
		t.Errorf("truncate fault over tcp: tc=%v answer=%v", tcp.Truncated, tcp.Answer)
	}

	s.SetFault(name, Fault{Drop: true})
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	if in, _, err := c.Exchange(m, s.Addr()); err == nil {
		t.Errorf("drop fault: got a reply %v", in)
	}

	// The zero Fault restores normal answers.
	s.SetFault(name, Fault{})
	if in := ask(t, s, "udp", name, dns.TypeA); len(in.Answer) != 1 {
		t.Errorf("after clearing the fault answer = %v", in.Answer)
	}
}

func TestStartSamePort(t *testing.T) {
	s := start(t, nil)
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", s.Addr())
	}

	// A second server on the same port must fail rather than share it.
	if s2, err := Start(s.Addr(), nil); err == nil {
		s2.Close()
		t.Error("second Start on a taken port succeeded")
	}
}

func TestStartNotLoopback(t *testing.T) {
	_, err := Start("192.0.2.1:0", nil)
	want := "start dns server: listen on 192.0.2.1:0: not a loopback address"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}
