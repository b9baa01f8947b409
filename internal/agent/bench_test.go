package agent

import (
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/resolve"
	"github.com/pathagent/pathagent/internal/topology"
)

// benchInput is what a diagnosis of n buckets has observed by the time
// Assemble runs, shaped like a real private subnet: an explicit table with
// the local route, a default route through a NAT gateway and the S3 gateway
// endpoint's prefix list route; a gateway and an interface endpoint. Every
// tenth bucket's put is denied and every seventh goes through an address
// outside the prefix list (the NAT gateway), so that findings are made.
func benchInput(n int) (*Agent, imds.Identity, *Network, []probes.BucketResult) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr

	id := imds.Identity{
		InstanceID:       "i-0a1b2c3d4e5f60718",
		Region:           "us-east-1",
		AvailabilityZone: "us-east-1a",
		AccountID:        "111122223333",
		MAC:              "0e:12:34:56:78:9a",
		VPCID:            "vpc-0bench",
		SubnetID:         "subnet-0bench",
		VPCCIDRs:         []netip.Prefix{pfx("10.16.0.0/16")},
		SubnetCIDR:       pfx("10.16.1.0/24"),
		PrivateIPs:       []netip.Addr{addr("10.16.1.10")},
		TokenUsed:        true,
	}

	s3List := topology.PrefixList{
		ID:   "pl-63a5400a",
		Name: "com.amazonaws.us-east-1.s3",
		CIDRs: []netip.Prefix{
			pfx("3.5.0.0/19"), pfx("16.15.176.0/20"), pfx("16.182.0.0/16"),
			pfx("18.34.0.0/19"), pfx("18.34.232.0/21"), pfx("52.216.0.0/15"),
			pfx("54.231.0.0/16"),
		},
	}
	top := &topology.Topology{
		RouteTable: &topology.RouteTable{
			ID: "rtb-0private",
			Routes: []topology.Route{
				{Destination: pfx("10.16.0.0/16"), Target: "local", Origin: "CreateRouteTable"},
				{Destination: pfx("0.0.0.0/0"), Target: "nat-0bench", Origin: "CreateRoute"},
				{PrefixListID: s3List.ID, Target: "vpce-0gw", Origin: "CreateRoute"},
			},
		},
		Endpoints: []topology.Endpoint{
			{
				ID: "vpce-0gw", Type: topology.Gateway, State: "available",
				ServiceName: "com.amazonaws.us-east-1.s3", RouteTableIDs: []string{"rtb-0private"},
			},
			{
				ID: "vpce-0if", Type: topology.Interface, State: "available",
				ServiceName: "com.amazonaws.us-east-1.s3", SubnetIDs: []string{"subnet-0bench"},
				DNSNames: []string{"*.vpce-0if.s3.us-east-1.vpce.amazonaws.com"},
			},
		},
		PrefixLists: map[string]topology.PrefixList{s3List.ID: s3List},
		FetchedAt:   time.Unix(1_800_000_000, 0),
	}
	ifAddr := addr("10.16.1.200")
	n2 := &Network{
		Topology:      top,
		EndpointAddrs: map[netip.Addr]string{ifAddr: "vpce-0if"},
		addrsByID:     map[string][]string{"vpce-0if": {ifAddr.String()}},
	}

	cfg := &config.Config{}
	results := make([]probes.BucketResult, n)
	for i := range results {
		name := fmt.Sprintf("bench-bucket-%04d", i)
		cfg.Buckets = append(cfg.Buckets, config.Bucket{Name: name, ExpectPath: "gateway_endpoint"})

		remote := netip.AddrPortFrom(addr("52.216.8.9"), 443)
		if i%7 == 6 {
			remote = netip.AddrPortFrom(addr("44.192.1.2"), 443)
		}
		res := &resolve.Result{
			Name:    "s3.us-east-1.amazonaws.com",
			Server:  "10.16.0.2:53",
			Addrs:   []resolve.Answer{{Addr: remote.Addr(), TTL: 5, Type: resolve.TypeA}},
			A:       resolve.Query{Type: resolve.TypeA, Replied: true, Transport: "udp"},
			AAAA:    resolve.Query{Type: resolve.TypeAAAA, Replied: true, Transport: "udp"},
			Latency: time.Millisecond,
		}
		var ps []probes.Result
		for _, op := range []probes.Op{probes.List, probes.Put, probes.Get, probes.Delete} {
			r := probes.Result{
				Op:         op,
				Key:        "pathagent-probe/i-0a1b2c3d4e5f60718/1800000000-0123456789abcdef.probe",
				Success:    true,
				HTTPStatus: 200,
				Host:       res.Name,
				Resolution: res,
				Remote:     remote,
				RequestID:  "BENCH0REQUEST0ID",
				Timings: probes.Timings{
					Resolve: time.Millisecond, Connect: 300 * time.Microsecond,
					FirstByte: 4 * time.Millisecond, Total: 5 * time.Millisecond,
				},
			}
			if op == probes.List {
				r.Key = ""
			}
			if i%10 == 9 {
				switch op {
				case probes.Put:
					r.Success, r.FailedIn, r.HTTPStatus = false, probes.PhaseRequest, 403
					r.Code, r.Error = "AccessDenied", "api error AccessDenied: Access Denied"
				case probes.Get:
					r = probes.Result{Op: op, Skipped: true}
				}
			}
			ps = append(ps, r)
		}
		results[i] = probes.BucketResult{Bucket: name, Region: "us-east-1", Probes: ps}
	}

	a := &Agent{Config: cfg, Resolver: "10.16.0.2:53"}
	return a, id, n2, results
}

var benchSizes = []int{1, 10, 100}

// BenchmarkAssemble is the whole classification of one cycle: each probe's
// path, the findings and the report.
func BenchmarkAssemble(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("buckets=%d", n), func(b *testing.B) {
			a, id, net, results := benchInput(n)
			b.ReportAllocs()
			for b.Loop() {
				if rep := a.Assemble(id, net, &Observed{Results: results}); len(rep.Buckets) != n {
					b.Fatalf("%d buckets in the report, want %d", len(rep.Buckets), n)
				}
			}
		})
	}
}

// BenchmarkReportJSON is the peer Assemble is read against: encoding the
// same report as `once --json` prints it, work every cycle's report gets
// at /report.
func BenchmarkReportJSON(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("buckets=%d", n), func(b *testing.B) {
			a, id, net, results := benchInput(n)
			rep := a.Assemble(id, net, &Observed{Results: results})
			b.ReportAllocs()
			for b.Loop() {
				if err := rep.WriteJSON(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
