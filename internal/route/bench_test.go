package route

import (
	"net/netip"
	"testing"

	"github.com/pathagent/pathagent/internal/topology"
)

// benchListSize is the prefix list the benchmarks match through: far
// beyond the S3 lists AWS publishes (tens of entries), the size of a
// customer-managed list a large network might route by.
const benchListSize = 10_000

// benchTopology is a private subnet's table: the local route, a default
// route through a NAT gateway, a few static routes, and the gateway
// endpoint's route through a prefix list of benchListSize /24 entries
// counting up from 3.0.0.0.
func benchTopology() *topology.Topology {
	cidrs := make([]netip.Prefix, benchListSize)
	for i := range cidrs {
		a := netip.AddrFrom4([4]byte{3, byte(i >> 8), byte(i), 0})
		cidrs[i] = netip.PrefixFrom(a, 24)
	}
	pl := topology.PrefixList{ID: "pl-bench", Name: "com.amazonaws.us-east-1.s3", CIDRs: cidrs}

	return &topology.Topology{
		RouteTable: &topology.RouteTable{
			ID: "rtb-bench",
			Routes: []topology.Route{
				static("10.16.0.0/16", "local"),
				static("0.0.0.0/0", "nat-bench"),
				static("192.168.0.0/16", "tgw-bench"),
				propagated("172.16.0.0/12", "vgw-bench"),
				viaList(pl.ID, "vpce-bench"),
			},
		},
		Endpoints: []topology.Endpoint{{
			ID:            "vpce-bench",
			Type:          topology.Gateway,
			ServiceName:   pl.Name,
			State:         "available",
			RouteTableIDs: []string{"rtb-bench"},
		}},
		PrefixLists: map[string]topology.PrefixList{pl.ID: pl},
	}
}

// benchAddrs are the addresses the iterations take turns matching: one in the list's
// last entry (the whole list is scanned and it wins), one that no entry
// covers (the default route wins), and one in the VPC.
var benchAddrs = []netip.Addr{
	netip.AddrFrom4([4]byte{3, (benchListSize - 1) >> 8, (benchListSize - 1) & 0xff, 7}),
	netip.MustParseAddr("52.216.8.9"),
	netip.MustParseAddr("10.16.1.10"),
}

func BenchmarkSelect(b *testing.B) {
	top := benchTopology()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := benchAddrs[i%len(benchAddrs)]
		if _, ok := Select(top.RouteTable, top.PrefixLists, a); !ok {
			b.Fatal("no route")
		}
	}
}

func BenchmarkAttribute(b *testing.B) {
	top := benchTopology()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := benchAddrs[i%len(benchAddrs)]
		if p := Attribute(top, nil, a); p.Kind == Unknown {
			b.Fatal(p.Note)
		}
	}
}

// BenchmarkScanBaseline is the peer Select is read against: the least any
// longest-prefix match over the same routes can do without an index, one
// Contains per route and list entry.
func BenchmarkScanBaseline(b *testing.B) {
	top := benchTopology()
	var flat []netip.Prefix
	for _, r := range top.RouteTable.Routes {
		if r.PrefixListID == "" {
			flat = append(flat, r.Destination)
			continue
		}
		flat = append(flat, top.PrefixLists[r.PrefixListID].CIDRs...)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := benchAddrs[i%len(benchAddrs)]
		best := -1
		for _, p := range flat {
			if p.Contains(a) && p.Bits() > best {
				best = p.Bits()
			}
		}
		if best < 0 {
			b.Fatal("no route")
		}
	}
}
