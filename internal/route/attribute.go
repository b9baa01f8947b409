package route

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pathagent/pathagent/internal/topology"
)

// Attribute names the path a connection to addr took out of the subnet.
//
// endpointAddrs maps the addresses of the VPC's S3 interface endpoints (as
// their DNS names resolve) to the endpoint's id: an address that the local
// route covers and that is one of these is an interface endpoint, any other
// local address is some other host in the VPC.
func Attribute(top *topology.Topology, endpointAddrs map[netip.Addr]string, addr netip.Addr) Path {
	addr = addr.Unmap()
	if top == nil || top.RouteTable == nil {
		return Path{Kind: Unknown, Note: "the route table could not be read"}
	}
	rt := top.RouteTable

	m, ok := Select(rt, top.PrefixLists, addr)
	if !ok {
		p := Path{Kind: NoRoute, RouteTableID: rt.ID}
		if len(m.Unsure) > 0 {
			p.Kind = Unknown
			p.Note = unsureNote(m.Unsure)
		}
		return p
	}

	p := Path{
		Kind:         kindOf(m.Route, top),
		Target:       m.Route.Target,
		RouteTableID: rt.ID,
		Destination:  destination(m.Route),
		Matched:      m.Prefix,
	}
	if len(m.Unsure) > 0 {
		p.Note = unsureNote(m.Unsure)
	}

	switch {
	case m.Route.Blackhole:
		// The target is gone; the route still claims the traffic and
		// drops it, whatever the target was.
		p.Kind = Blackhole
	case m.Route.Target == "local":
		if id, ok := endpointAddrs[addr]; ok {
			p.Kind, p.Target = InterfaceEndpoint, id
		}
	}
	return p
}

func destination(r topology.Route) string {
	if r.PrefixListID != "" {
		return r.PrefixListID
	}
	return r.Destination.String()
}

func unsureNote(ids []string) string {
	return fmt.Sprintf("entries of %s could not be read and may hold a longer match",
		strings.Join(ids, ", "))
}

// kindOf names the kind of a route's target from its id. A vpce- target is a
// gateway endpoint when it is one of the VPC's S3 gateway endpoints, or, if
// the endpoints could not be listed, when the route's destination is the S3
// prefix list (gateway endpoints add exactly such routes): Gateway Load
// Balancer endpoints are vpce- route targets too.
func kindOf(r topology.Route, top *topology.Topology) Kind {
	prefix, _, _ := strings.Cut(r.Target, "-")
	switch prefix {
	case "igw":
		return InternetGateway
	case "nat":
		return NATGateway
	case "tgw":
		return TransitGateway
	case "pcx":
		return Peering
	case "eigw":
		return EgressOnly
	case "vpce":
		for _, ep := range top.Endpoints {
			if ep.ID == r.Target {
				if ep.Type == topology.Gateway {
					return GatewayEndpoint
				}
				return Other
			}
		}
		if strings.HasSuffix(top.PrefixLists[r.PrefixListID].Name, ".s3") {
			return GatewayEndpoint
		}
	}
	return Other
}
