package route

import (
	"net/netip"
	"testing"

	"github.com/pathagent/pathagent/internal/topology"
)

func cidr(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func static(dst, target string) topology.Route {
	return topology.Route{Destination: cidr(dst), Target: target, Origin: "CreateRoute"}
}

func viaList(id, target string) topology.Route {
	return topology.Route{PrefixListID: id, Target: target, Origin: "CreateRoute"}
}

func propagated(dst, target string) topology.Route {
	return topology.Route{Destination: cidr(dst), Target: target, Origin: "EnableVgwRoutePropagation"}
}

var s3List = topology.PrefixList{
	ID:    "pl-63a5400a",
	Name:  "com.amazonaws.us-east-1.s3",
	CIDRs: []netip.Prefix{cidr("52.216.0.0/15"), cidr("3.5.0.0/19"), cidr("54.231.0.0/16")},
}

func TestSelect(t *testing.T) {
	lists := map[string]topology.PrefixList{s3List.ID: s3List}

	tests := []struct {
		name   string
		routes []topology.Route
		lists  map[string]topology.PrefixList
		addr   string

		wantTarget string
		wantPrefix string // "" for no match
		wantUnsure []string
	}{
		{
			name:       "default route",
			routes:     []topology.Route{static("10.0.0.0/16", "local"), static("0.0.0.0/0", "igw-1")},
			addr:       "52.216.1.2",
			wantTarget: "igw-1",
			wantPrefix: "0.0.0.0/0",
		},
		{
			name:       "local route covers the VPC",
			routes:     []topology.Route{static("10.0.0.0/16", "local"), static("0.0.0.0/0", "igw-1")},
			addr:       "10.0.3.4",
			wantTarget: "local",
			wantPrefix: "10.0.0.0/16",
		},
		{
			// The prefix list entry (/15) is longer than the default route.
			name: "prefix list beats default route",
			routes: []topology.Route{
				static("0.0.0.0/0", "nat-1"),
				viaList("pl-63a5400a", "vpce-1"),
			},
			addr:       "52.217.9.9",
			wantTarget: "vpce-1",
			wantPrefix: "52.216.0.0/15",
		},
		{
			// AWS: a more specific route wins whatever its kind.
			name: "more specific static route beats prefix list",
			routes: []topology.Route{
				viaList("pl-63a5400a", "vpce-1"),
				static("52.216.0.0/16", "nat-1"),
			},
			addr:       "52.216.7.7",
			wantTarget: "nat-1",
			wantPrefix: "52.216.0.0/16",
		},
		{
			// The /16 static route does not cover 52.217/16, so the
			// prefix list entry /15 is the longest match there.
			name: "more specific static route outside the address",
			routes: []topology.Route{
				viaList("pl-63a5400a", "vpce-1"),
				static("52.216.0.0/16", "nat-1"),
			},
			addr:       "52.217.7.7",
			wantTarget: "vpce-1",
			wantPrefix: "52.216.0.0/15",
		},
		{
			// Same length: static beats prefix list.
			name: "static beats prefix list on a tie",
			routes: []topology.Route{
				viaList("pl-63a5400a", "vpce-1"),
				static("52.216.0.0/15", "tgw-1"),
			},
			addr:       "52.216.1.1",
			wantTarget: "tgw-1",
			wantPrefix: "52.216.0.0/15",
		},
		{
			// Same length: prefix list beats propagated.
			name: "prefix list beats propagated on a tie",
			routes: []topology.Route{
				propagated("52.216.0.0/15", "vgw-1"),
				viaList("pl-63a5400a", "vpce-1"),
			},
			addr:       "52.216.1.1",
			wantTarget: "vpce-1",
			wantPrefix: "52.216.0.0/15",
		},
		{
			name: "static beats propagated on a tie",
			routes: []topology.Route{
				propagated("52.216.0.0/15", "vgw-1"),
				static("52.216.0.0/15", "pcx-1"),
			},
			addr:       "52.216.1.1",
			wantTarget: "pcx-1",
			wantPrefix: "52.216.0.0/15",
		},
		{
			// A longer propagated route still wins: priority only
			// breaks ties.
			name: "longer propagated route wins",
			routes: []topology.Route{
				viaList("pl-63a5400a", "vpce-1"),
				propagated("52.216.4.0/24", "vgw-1"),
			},
			addr:       "52.216.4.1",
			wantTarget: "vgw-1",
			wantPrefix: "52.216.4.0/24",
		},
		{
			name:       "IPv4 default does not cover IPv6",
			routes:     []topology.Route{static("0.0.0.0/0", "igw-1")},
			addr:       "2600:1f18::1",
			wantPrefix: "",
		},
		{
			name: "IPv6 default route",
			routes: []topology.Route{
				static("0.0.0.0/0", "nat-1"),
				static("::/0", "eigw-1"),
			},
			addr:       "2600:1f18::1",
			wantTarget: "eigw-1",
			wantPrefix: "::/0",
		},
		{
			name:       "IPv4-mapped address matches IPv4 routes",
			routes:     []topology.Route{static("0.0.0.0/0", "igw-1")},
			addr:       "::ffff:52.216.1.1",
			wantTarget: "igw-1",
			wantPrefix: "0.0.0.0/0",
		},
		{
			name:       "no route",
			routes:     []topology.Route{static("10.0.0.0/16", "local")},
			addr:       "52.216.1.1",
			wantPrefix: "",
		},
		{
			// The list could hold a /15 that beats the default route.
			name: "unreadable prefix list makes the answer unsure",
			routes: []topology.Route{
				static("0.0.0.0/0", "nat-1"),
				viaList("pl-unknown", "vpce-1"),
			},
			addr:       "52.216.1.1",
			wantTarget: "nat-1",
			wantPrefix: "0.0.0.0/0",
			wantUnsure: []string{"pl-unknown"},
		},
		{
			// Nothing can beat a host route.
			name: "host route is sure despite an unreadable list",
			routes: []topology.Route{
				static("52.216.1.1/32", "nat-1"),
				viaList("pl-unknown", "vpce-1"),
			},
			addr:       "52.216.1.1",
			wantTarget: "nat-1",
			wantPrefix: "52.216.1.1/32",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.lists
			if l == nil {
				l = lists
			}
			rt := &topology.RouteTable{ID: "rtb-1", Routes: tt.routes}

			m, ok := Select(rt, l, netip.MustParseAddr(tt.addr))

			if ok != (tt.wantPrefix != "") {
				t.Fatalf("matched = %v, want %v (route %+v)", ok, !ok, m.Route)
			}
			if ok && (m.Route.Target != tt.wantTarget || m.Prefix.String() != tt.wantPrefix) {
				t.Errorf("got %s via %s, want %s via %s",
					m.Route.Target, m.Prefix, tt.wantTarget, tt.wantPrefix)
			}
			if len(m.Unsure) != len(tt.wantUnsure) {
				t.Errorf("unsure = %v, want %v", m.Unsure, tt.wantUnsure)
			}
		})
	}
}

func TestAttribute(t *testing.T) {
	gw := topology.Endpoint{ID: "vpce-gw", Type: topology.Gateway}
	glb := topology.Endpoint{ID: "vpce-glb", Type: "GatewayLoadBalancer"}
	lists := map[string]topology.PrefixList{s3List.ID: s3List}
	ifaceAddrs := map[netip.Addr]string{netip.MustParseAddr("10.0.1.50"): "vpce-if"}

	tests := []struct {
		name      string
		routes    []topology.Route
		endpoints []topology.Endpoint
		lists     map[string]topology.PrefixList
		addr      string

		want       Kind
		wantTarget string
	}{
		{
			name:       "gateway endpoint",
			routes:     []topology.Route{static("0.0.0.0/0", "nat-1"), viaList(s3List.ID, "vpce-gw")},
			endpoints:  []topology.Endpoint{gw},
			addr:       "52.216.1.1",
			want:       GatewayEndpoint,
			wantTarget: "vpce-gw",
		},
		{
			// DescribeVpcEndpoints was denied, but the route names the
			// S3 prefix list, which only a gateway endpoint adds.
			name:       "gateway endpoint known from the S3 prefix list alone",
			routes:     []topology.Route{viaList(s3List.ID, "vpce-gw")},
			addr:       "52.216.1.1",
			want:       GatewayEndpoint,
			wantTarget: "vpce-gw",
		},
		{
			name:       "load balancer endpoint is not a gateway endpoint",
			routes:     []topology.Route{static("0.0.0.0/0", "vpce-glb")},
			endpoints:  []topology.Endpoint{glb},
			addr:       "52.216.1.1",
			want:       Other,
			wantTarget: "vpce-glb",
		},
		{
			name:       "NAT gateway",
			routes:     []topology.Route{static("0.0.0.0/0", "nat-1")},
			addr:       "52.216.1.1",
			want:       NATGateway,
			wantTarget: "nat-1",
		},
		{
			name:       "internet gateway",
			routes:     []topology.Route{static("0.0.0.0/0", "igw-1")},
			addr:       "52.216.1.1",
			want:       InternetGateway,
			wantTarget: "igw-1",
		},
		{
			name:       "transit gateway",
			routes:     []topology.Route{static("0.0.0.0/0", "tgw-1")},
			addr:       "52.216.1.1",
			want:       TransitGateway,
			wantTarget: "tgw-1",
		},
		{
			name:       "peering",
			routes:     []topology.Route{static("52.0.0.0/8", "pcx-1")},
			addr:       "52.216.1.1",
			want:       Peering,
			wantTarget: "pcx-1",
		},
		{
			name:       "egress-only internet gateway",
			routes:     []topology.Route{static("::/0", "eigw-1")},
			addr:       "2600:1f18::1",
			want:       EgressOnly,
			wantTarget: "eigw-1",
		},
		{
			name:       "network interface target",
			routes:     []topology.Route{static("0.0.0.0/0", "eni-1")},
			addr:       "52.216.1.1",
			want:       Other,
			wantTarget: "eni-1",
		},
		{
			name:       "interface endpoint address in the VPC",
			routes:     []topology.Route{static("10.0.0.0/16", "local")},
			addr:       "10.0.1.50",
			want:       InterfaceEndpoint,
			wantTarget: "vpce-if",
		},
		{
			name:       "other host in the VPC",
			routes:     []topology.Route{static("10.0.0.0/16", "local")},
			addr:       "10.0.1.99",
			want:       Other,
			wantTarget: "local",
		},
		{
			name: "blackhole wins over the target's kind",
			routes: []topology.Route{
				{Destination: cidr("0.0.0.0/0"), Target: "nat-gone", Blackhole: true},
			},
			addr:       "52.216.1.1",
			want:       Blackhole,
			wantTarget: "nat-gone",
		},
		{
			name:   "no route",
			routes: []topology.Route{static("10.0.0.0/16", "local")},
			addr:   "52.216.1.1",
			want:   NoRoute,
		},
		{
			// Without the list's entries, nothing is known to match.
			name:   "only route is an unreadable list",
			routes: []topology.Route{viaList("pl-unknown", "vpce-gw")},
			addr:   "52.216.1.1",
			want:   Unknown,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.lists
			if l == nil {
				l = lists
			}
			top := &topology.Topology{
				RouteTable:  &topology.RouteTable{ID: "rtb-1", Routes: tt.routes},
				Endpoints:   tt.endpoints,
				PrefixLists: l,
			}

			got := Attribute(top, ifaceAddrs, netip.MustParseAddr(tt.addr))

			if got.Kind != tt.want || got.Target != tt.wantTarget {
				t.Errorf("got %s, want %s %s", got, tt.want, tt.wantTarget)
			}
			if got.Kind != NoRoute && got.Kind != Unknown && got.RouteTableID != "rtb-1" {
				t.Errorf("route table = %q, want rtb-1", got.RouteTableID)
			}
		})
	}
}

func TestAttributeWithoutRouteTable(t *testing.T) {
	got := Attribute(&topology.Topology{}, nil, netip.MustParseAddr("52.216.1.1"))
	if got.Kind != Unknown || got.Note == "" {
		t.Errorf("got %+v, want unknown with a note", got)
	}
}

func TestPathString(t *testing.T) {
	p := Path{
		Kind:         GatewayEndpoint,
		Target:       "vpce-1",
		RouteTableID: "rtb-1",
		Destination:  "pl-63a5400a",
		Matched:      cidr("52.216.0.0/15"),
	}
	want := "gateway_endpoint vpce-1 via pl-63a5400a (52.216.0.0/15) in rtb-1"
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
