package explain

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/route"
	"github.com/pathagent/pathagent/internal/topology"
)

func okProbes() []probes.Result {
	return []probes.Result{
		{Op: probes.List, Success: true},
		{Op: probes.Put, Success: true},
		{Op: probes.Get, Success: true},
		{Op: probes.Delete, Success: true},
	}
}

func TestFindings(t *testing.T) {
	gw := topology.Endpoint{
		ID: "vpce-gw", Type: topology.Gateway, State: "available",
		ServiceName: "com.amazonaws.us-east-1.s3", RouteTableIDs: []string{"rtb-other"},
	}
	gwHere := gw
	gwHere.RouteTableIDs = []string{"rtb-1"}
	nat := route.Path{Kind: route.NATGateway, Target: "nat-1", RouteTableID: "rtb-1", Destination: "0.0.0.0/0"}

	tests := []struct {
		name      string
		endpoints []topology.Endpoint
		problems  []topology.Problem
		region    string // the bucket's; the instance is in us-east-1
		path      route.Path
		probes    []probes.Result
		redirect  bool

		want []string // finding codes, in order
	}{
		{
			name:      "through the endpoint: nothing to say",
			endpoints: []topology.Endpoint{gwHere},
			path:      route.Path{Kind: route.GatewayEndpoint, Target: "vpce-gw"},
			want:      nil,
		},
		{
			name:      "endpoint elsewhere, traffic through NAT",
			endpoints: []topology.Endpoint{gw},
			path:      nat,
			want:      []string{CodeNotAssociated, CodeNATSameRegion},
		},
		{
			name:      "associated, but a longer route wins",
			endpoints: []topology.Endpoint{gwHere},
			path:      route.Path{Kind: route.NATGateway, Target: "nat-1", RouteTableID: "rtb-1", Destination: "52.216.0.0/24"},
			want:      []string{CodeOverridingRoute, CodeNATSameRegion},
		},
		{
			name:      "no endpoint at all, NAT",
			endpoints: []topology.Endpoint{},
			path:      nat,
			want:      []string{CodeNATSameRegion},
		},
		{
			// Another region's traffic cannot use the endpoint: no
			// association finding, no same-region NAT finding.
			name:      "other region through NAT",
			endpoints: []topology.Endpoint{gw},
			region:    "eu-west-1",
			redirect:  true,
			path:      nat,
			want:      []string{CodeOtherRegion},
		},
		{
			name:   "blackhole, probes fail",
			path:   route.Path{Kind: route.Blackhole, Target: "nat-gone", RouteTableID: "rtb-1", Destination: "0.0.0.0/0"},
			probes: []probes.Result{{Op: probes.List, FailedIn: probes.PhaseConnect, Error: "refused"}, {Op: probes.Put, Skipped: true}},
			want:   []string{CodeBlackhole, CodeProbeFailed},
		},
		{
			name:     "endpoints unreadable",
			problems: []topology.Problem{{Call: "DescribeVpcEndpoints", Code: "UnauthorizedOperation"}},
			path:     route.Path{Kind: route.InternetGateway, Target: "igw-1", RouteTableID: "rtb-1"},
			want:     []string{CodeEC2CallFailed},
		},
		{
			name: "pending endpoint",
			endpoints: []topology.Endpoint{{
				ID: "vpce-new", Type: topology.Gateway, State: "pending",
				ServiceName: "com.amazonaws.us-east-1.s3",
			}},
			path: route.Path{Kind: route.InternetGateway, Target: "igw-1", RouteTableID: "rtb-1"},
			want: []string{CodeEndpointUnavailable},
		},
		{
			name: "proxy",
			path: route.Path{Kind: route.Proxy, Target: "10.0.0.5:3128"},
			want: []string{CodeProxy},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			region := tt.region
			if region == "" {
				region = "us-east-1"
			}
			ps := tt.probes
			if ps == nil {
				ps = okProbes()
			}
			br := probes.BucketResult{Bucket: "b", Region: region, Probes: ps}
			if tt.redirect {
				br.Redirect = &probes.Result{Op: probes.List, Code: "PermanentRedirect"}
			}
			top := &topology.Topology{
				RouteTable: &topology.RouteTable{ID: "rtb-1", Routes: []topology.Route{
					{Destination: netip.MustParsePrefix("0.0.0.0/0"), Target: "nat-1"},
				}},
				Endpoints: tt.endpoints,
				Problems:  tt.problems,
			}

			fs := Findings(Input{
				Region:   "us-east-1",
				Topology: top,
				Buckets:  []Bucket{{Result: br, Path: tt.path}},
			})

			var got []string
			for _, f := range fs {
				got = append(got, f.Code)
				if f.Summary == "" {
					t.Errorf("%s: empty summary", f.Code)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("codes %v, want %v", got, tt.want)
			}
		})
	}
}

// The fix for an unassociated endpoint is the exact command.
func TestNotAssociatedFix(t *testing.T) {
	fs := Findings(Input{
		Region: "us-east-1",
		Topology: &topology.Topology{
			RouteTable: &topology.RouteTable{ID: "rtb-1"},
			Endpoints: []topology.Endpoint{{
				ID: "vpce-gw", Type: topology.Gateway, State: "available",
				ServiceName: "com.amazonaws.us-east-1.s3",
			}},
		},
		Buckets: []Bucket{{
			Result: probes.BucketResult{Bucket: "b", Region: "us-east-1", Probes: okProbes()},
			Path:   route.Path{Kind: route.InternetGateway, Target: "igw-1", RouteTableID: "rtb-1"},
		}},
	})
	want := "aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-gw --add-route-table-ids rtb-1"
	if len(fs) != 1 || fs[0].Fix != want || !strings.Contains(fs[0].Summary, "igw-1") {
		t.Errorf("findings %+v, want one with fix %q", fs, want)
	}
}
