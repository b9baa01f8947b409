// Package route decides which way the VPC sends traffic for an address, by
// applying AWS's route selection rules to the subnet's route table.
package route

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pathagent/pathagent/internal/topology"
)

// Kind names the way traffic leaves the subnet. The values are stable: they
// appear in the JSON report and as metric label values.
type Kind string

// The path kinds, from the most specific to the catch-alls.
const (
	GatewayEndpoint   Kind = "gateway_endpoint"
	InterfaceEndpoint Kind = "interface_endpoint"
	InternetGateway   Kind = "internet_gateway"
	NATGateway        Kind = "nat_gateway"
	TransitGateway    Kind = "transit_gateway"
	Peering           Kind = "vpc_peering"
	EgressOnly        Kind = "egress_only_internet_gateway"
	Other             Kind = "other"
	Blackhole         Kind = "blackhole"
	NoRoute           Kind = "no_route"
	Proxy             Kind = "proxy"
	Unknown           Kind = "unknown"
)

// Path is how one connection left the subnet.
type Path struct {
	Kind Kind

	// Target is the route's target id (vpce-..., igw-..., nat-...), the
	// interface endpoint's id for InterfaceEndpoint, or the proxy's
	// host:port for Proxy. Empty for NoRoute and Unknown.
	Target string

	// RouteTableID is the table the route was chosen from.
	RouteTableID string

	// Destination is the route's destination as written in the table: a
	// CIDR or a prefix list id.
	Destination string

	// Matched is the prefix that covered the address: the destination
	// CIDR, or the prefix list entry. Invalid when no route matched.
	Matched netip.Prefix

	// Note says why the path is Unknown, or what is uncertain about it;
	// empty when the path is established.
	Note string
}

// String renders the path for people, for example
// "gateway_endpoint vpce-0123 via pl-63a5400a (52.216.0.0/15) in rtb-0456".
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Target != "" {
		b.WriteString(" " + p.Target)
	}
	if p.Destination != "" {
		b.WriteString(" via " + p.Destination)
		if p.Matched.IsValid() && p.Matched.String() != p.Destination {
			fmt.Fprintf(&b, " (%s)", p.Matched)
		}
	}
	if p.RouteTableID != "" {
		b.WriteString(" in " + p.RouteTableID)
	}
	return b.String()
}

// Match is the route chosen for an address.
type Match struct {
	Route topology.Route

	// Prefix is what covered the address: the route's CIDR, or the entry
	// of its prefix list.
	Prefix netip.Prefix

	// Unsure lists prefix lists whose entries are unknown and that could
	// hold an entry more specific than Prefix, so could have won.
	Unsure []string
}

// Select picks the route the VPC uses for addr, following AWS's rules: the
// longest matching prefix wins, a prefix list route matching through one of
// its entries; among equally long matches a static route beats a prefix list
// route, which beats a propagated route. IPv4 and IPv6 are matched apart:
// 0.0.0.0/0 never covers an IPv6 address. ok is false when nothing matched.
//
// lists holds the entries of the prefix lists the table names; a list that
// is absent is treated as unknown, and reported in Match.Unsure when it
// could have changed the answer.
func Select(t *topology.RouteTable, lists map[string]topology.PrefixList, addr netip.Addr) (m Match, ok bool) {
	addr = addr.Unmap()

	var missing []string
	for _, r := range t.Routes {
		p, hit, known := covers(r, lists, addr)
		if !known {
			missing = append(missing, r.PrefixListID)
			continue
		}
		if !hit {
			continue
		}
		if !ok || better(r, p, m.Route, m.Prefix) {
			m, ok = Match{Route: r, Prefix: p}, true
		}
	}

	// An unreadable list might hold an entry longer than the winner (or
	// the only entry that matches at all), so the winner is only as good
	// as what was readable.
	for _, id := range missing {
		if !ok || m.Prefix.Bits() < addr.BitLen() {
			m.Unsure = append(m.Unsure, id)
		}
	}
	return m, ok
}

// covers reports whether route r covers addr, and through which prefix.
// known is false for a prefix list route whose entries are not in lists.
func covers(r topology.Route, lists map[string]topology.PrefixList, addr netip.Addr) (p netip.Prefix, hit, known bool) {
	if r.PrefixListID == "" {
		return r.Destination, r.Destination.Contains(addr), true
	}

	pl, known := lists[r.PrefixListID]
	if !known {
		return netip.Prefix{}, false, false
	}
	for _, e := range pl.CIDRs {
		if e.Contains(addr) && (!hit || e.Bits() > p.Bits()) {
			p, hit = e, true
		}
	}
	return p, hit, true
}

// better reports whether route a, matching through prefix pa, wins over
// route b matching through pb.
func better(a topology.Route, pa netip.Prefix, b topology.Route, pb netip.Prefix) bool {
	if pa.Bits() != pb.Bits() {
		return pa.Bits() > pb.Bits()
	}
	return rank(a) < rank(b)
}

// rank orders equally specific routes: lower wins.
func rank(r topology.Route) int {
	switch {
	case r.Propagated():
		return 2
	case r.PrefixListID != "":
		return 1
	default:
		return 0
	}
}
