package explain

import (
	"errors"
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

// Failures with one cause get a finding naming it; a timeout is blamed on a
// filter only when the route forwards the traffic.
func TestReasonFindings(t *testing.T) {
	s3 := topology.PrefixList{ID: "pl-s3", Name: "com.amazonaws.us-east-1.s3", CIDRs: []netip.Prefix{netip.MustParsePrefix("52.216.0.0/15")}}
	top := &topology.Topology{
		RouteTable:     &topology.RouteTable{ID: "rtb-1"},
		PrefixLists:    map[string]topology.PrefixList{"pl-s3": s3},
		S3PrefixListID: "pl-s3",
	}
	nat := route.Path{Kind: route.NATGateway, Target: "nat-1", RouteTableID: "rtb-1"}
	hole := route.Path{Kind: route.Blackhole, Target: "nat-gone", RouteTableID: "rtb-1", Destination: "0.0.0.0/0"}

	// probes.Result keeps how it failed unexported; these are built the
	// way the prober fills them.
	denied := probes.Result{Op: probes.List, FailedIn: probes.PhaseRequest, Code: "AccessDenied", HTTPStatus: 403}
	badKey := probes.Result{Op: probes.List, FailedIn: probes.PhaseRequest, Code: "InvalidAccessKeyId", HTTPStatus: 403}
	skew := probes.Result{Op: probes.List, FailedIn: probes.PhaseRequest, Code: "RequestTimeTooSkewed", HTTPStatus: 403}

	tests := []struct {
		name  string
		path  route.Path
		probe probes.Result
		want  string // the finding that must be there
		fix   string // a piece of its fix
	}{
		{"access denied", nat, denied, CodeAccessDenied, ""},
		{"credentials", nat, badKey, CodeCredentialsRejected, "instance role"},
		{"clock", nat, skew, CodeClockSkew, "169.254.169.123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Findings(Input{Region: "us-east-1", Topology: top, Buckets: []Bucket{{
				Result: probes.BucketResult{Bucket: "b", Region: "us-east-1", Probes: []probes.Result{tt.probe}},
				Path:   tt.path,
			}}})
			found := false
			for _, f := range fs {
				if f.Code == tt.want {
					found = true
					if !strings.Contains(f.Fix, tt.fix) {
						t.Errorf("fix %q lacks %q", f.Fix, tt.fix)
					}
				}
			}
			if !found {
				t.Errorf("no %s finding in %+v", tt.want, fs)
			}
		})
	}

	// A timeout on a route that forwards is blamed on filters; on a
	// blackhole route, the route explains it.
	timeout := probes.Result{Op: probes.List, FailedIn: probes.PhaseConnect, TimedOut: true,
		Remote: netip.MustParseAddrPort("52.216.1.1:443")}
	for _, tt := range []struct {
		path route.Path
		want bool
	}{{nat, true}, {hole, false}} {
		fs := Findings(Input{Region: "us-east-1", Topology: top, Buckets: []Bucket{{
			Result: probes.BucketResult{Bucket: "b", Region: "us-east-1", Probes: []probes.Result{timeout}},
			Path:   tt.path,
		}}})
		got := false
		for _, f := range fs {
			got = got || f.Code == CodeTimeoutOnOpenRoute
		}
		if got != tt.want {
			t.Errorf("%s: %s finding = %v, want %v", tt.path.Kind, CodeTimeoutOnOpenRoute, got, tt.want)
		}
	}
}

func TestNACLFixListsCIDRs(t *testing.T) {
	top := &topology.Topology{
		PrefixLists: map[string]topology.PrefixList{"pl-s3": {
			ID: "pl-s3", CIDRs: []netip.Prefix{netip.MustParsePrefix("52.216.0.0/15"), netip.MustParsePrefix("3.5.0.0/19")},
		}},
		S3PrefixListID: "pl-s3",
	}
	if got := nACLFix(top); !strings.Contains(got, "52.216.0.0/15, 3.5.0.0/19") {
		t.Errorf("fix %q does not list the S3 CIDRs", got)
	}
}

func TestCredentialFindings(t *testing.T) {
	tests := []struct {
		name string
		c    Credentials
		want []string
	}{
		{"instance role", Credentials{Source: "EC2RoleProvider"}, nil},
		{"long-lived keys", Credentials{Source: "EnvConfigCredentials", LongLived: true}, []string{CodeLongLivedKeys}},
		{"none", Credentials{Err: errors.New("no EC2 IMDS role found")}, []string{CodeNoCredentials}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range credentialFindings(tt.c) {
				got = append(got, f.Code)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("codes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTLSIntercepted(t *testing.T) {
	allowed := []string{"Amazon", "Starfield Technologies, Inc."}
	tests := []struct {
		name    string
		issuers []string
		want    bool
	}{
		{"S3's own chain", []string{"Amazon", "Starfield Technologies, Inc."}, false},
		{"an inspecting proxy's authority", []string{"Corp Inspection CA"}, true},
		{"plain HTTP", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Findings(Input{Region: "us-east-1", Topology: &topology.Topology{}, TLSIssuers: allowed,
				Buckets: []Bucket{{
					Result: probes.BucketResult{Bucket: "b", Region: "us-east-1", Probes: []probes.Result{
						{Op: probes.List, Success: true, Host: "s3.us-east-1.amazonaws.com", Issuers: tt.issuers},
					}},
					Path: route.Path{Kind: route.GatewayEndpoint, Target: "vpce-1"},
				}}})
			got := false
			for _, f := range fs {
				if f.Code == CodeTLSIntercepted {
					got = true
					if !strings.Contains(f.Summary, "Corp Inspection CA") {
						t.Errorf("summary %q does not name the issuer", f.Summary)
					}
				}
			}
			if got != tt.want {
				t.Errorf("tls_intercepted = %v, want %v (%+v)", got, tt.want, fs)
			}
		})
	}
}
