package dnsserver

import (
	"strings"
	"testing"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

func TestZoneFind(t *testing.T) {
	z, err := newZone([]scenario.Record{
		{Name: "s3.us-east-1.amazonaws.com", A: []string{"127.52.216.10"}},
		{Name: "*.s3.us-east-1.amazonaws.com", A: []string{"127.52.216.11"}},
		{Name: "*.b.s3.us-east-1.amazonaws.com", A: []string{"127.52.216.12"}},
		{Name: "v6.lab.", AAAA: []string{"::1"}, TTL: 5},
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		query string
		want  string // first A or AAAA address; "" for no such name
	}{
		{name: "exact", query: "s3.us-east-1.amazonaws.com.", want: "127.52.216.10"},
		{name: "exact any case", query: "S3.US-East-1.amazonaws.com", want: "127.52.216.10"},
		{
			name:  "wildcard one label",
			query: "lab-data.s3.us-east-1.amazonaws.com.",
			want:  "127.52.216.11",
		},
		{
			name:  "wildcard two labels",
			query: "x.y.s3.us-east-1.amazonaws.com.",
			want:  "127.52.216.11",
		},
		// The closest wildcard wins over one further up.
		{name: "closest wildcard", query: "a.b.s3.us-east-1.amazonaws.com.", want: "127.52.216.12"},
		// "*.b..." does not cover "b..." itself, but "*.s3..." does.
		{name: "wildcard parent", query: "b.s3.us-east-1.amazonaws.com.", want: "127.52.216.11"},
		{name: "trailing dot in record", query: "v6.lab", want: "::1"},
		{name: "unknown", query: "s3.us-west-2.amazonaws.com.", want: ""},
		{name: "suffix is not a label", query: "xs3.us-east-1.amazonaws.com.", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := z.find(tt.query)
			got := ""
			switch {
			case e == nil:
			case len(e.a) > 0:
				got = e.a[0].String()
			case len(e.aaaa) > 0:
				got = e.aaaa[0].String()
			}
			if got != tt.want {
				t.Errorf("find(%q) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func TestZoneTTL(t *testing.T) {
	z, err := newZone([]scenario.Record{
		{Name: "default.lab", A: []string{"127.0.0.1"}},
		{Name: "set.lab", A: []string{"127.0.0.1"}, TTL: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"default.lab": 60, "set.lab": 5} {
		if got := z.find(name).ttl; got != want {
			t.Errorf("ttl of %s = %d, want %d", name, got, want)
		}
	}
}

func TestZoneInvalid(t *testing.T) {
	tests := []struct {
		name   string
		record scenario.Record
		want   string
	}{
		{
			name:   "no name",
			record: scenario.Record{A: []string{"127.0.0.1"}},
			want:   "record 0: name missing",
		},
		{
			name:   "ipv6 in a",
			record: scenario.Record{Name: "x.lab", A: []string{"::1"}},
			want:   `record x.lab: a "::1" is not an IPv4 address`,
		},
		{
			name:   "ipv4 in aaaa",
			record: scenario.Record{Name: "x.lab", AAAA: []string{"127.0.0.1"}},
			want:   `record x.lab: aaaa "127.0.0.1" is not an IPv6 address`,
		},
		{
			name:   "garbage",
			record: scenario.Record{Name: "x.lab", A: []string{"localhost"}},
			want:   `record x.lab: a "localhost" is not an IPv4 address`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newZone([]scenario.Record{tt.record})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
