package ec2api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

type routeTablesResponse struct {
	envelope
	RouteTables []routeTableXML `xml:"routeTableSet>item"`
}

type routeTableXML struct {
	ID           string           `xml:"routeTableId"`
	VpcID        string           `xml:"vpcId"`
	OwnerID      string           `xml:"ownerId"`
	Associations []associationXML `xml:"associationSet>item"`
	Routes       []routeXML       `xml:"routeSet>item"`
}

type associationXML struct {
	ID           string `xml:"routeTableAssociationId"`
	RouteTableID string `xml:"routeTableId"`
	SubnetID     string `xml:"subnetId,omitempty"`
	Main         bool   `xml:"main"`
	State        string `xml:"associationState>state"`
}

// routeXML is one route. EC2 names the target in a field chosen by the
// target's kind; exactly one of the target fields is set.
type routeXML struct {
	DestinationCidrBlock     string `xml:"destinationCidrBlock,omitempty"`
	DestinationIpv6CidrBlock string `xml:"destinationIpv6CidrBlock,omitempty"`
	DestinationPrefixListID  string `xml:"destinationPrefixListId,omitempty"`

	GatewayID                   string `xml:"gatewayId,omitempty"`
	NatGatewayID                string `xml:"natGatewayId,omitempty"`
	TransitGatewayID            string `xml:"transitGatewayId,omitempty"`
	VpcPeeringConnectionID      string `xml:"vpcPeeringConnectionId,omitempty"`
	EgressOnlyInternetGatewayID string `xml:"egressOnlyInternetGatewayId,omitempty"`
	NetworkInterfaceID          string `xml:"networkInterfaceId,omitempty"`
	InstanceID                  string `xml:"instanceId,omitempty"`
	CarrierGatewayID            string `xml:"carrierGatewayId,omitempty"`
	LocalGatewayID              string `xml:"localGatewayId,omitempty"`

	State  string `xml:"state"`
	Origin string `xml:"origin"`
}

// routeTableFilters are the DescribeRouteTables filters the server
// knows. Every table of a scenario belongs to the instance's VPC.
func routeTableFilters(vpcID string) filterKeys[scenario.RouteTable] {
	return filterKeys[scenario.RouteTable]{
		"association.subnet-id": func(rt scenario.RouteTable) []string { return rt.Subnets },
		"association.main":      mainValues,
		"route-table-id":        func(rt scenario.RouteTable) []string { return []string{rt.ID} },
		"vpc-id":                func(scenario.RouteTable) []string { return []string{vpcID} },
	}
}

// mainValues gives a table's values for association.main: one per
// association, true for the main association and false for each
// explicit subnet association. A table with no association has none
// and matches neither value, as on EC2.
func mainValues(rt scenario.RouteTable) []string {
	var out []string
	if rt.Main {
		out = append(out, "true")
	}
	for range rt.Subnets {
		out = append(out, "false")
	}
	return out
}

func describeRouteTables(sc *scenario.Scenario, p params) (response, error) {
	keys := routeTableFilters(sc.Instance.VPCID)
	fs, err := filters(p, keys)
	if err != nil {
		return nil, err
	}
	tables, err := pick(sc.RouteTables, p.list("RouteTableId"),
		func(rt scenario.RouteTable) string { return rt.ID },
		"InvalidRouteTableID.NotFound", "route table")
	if err != nil {
		return nil, err
	}

	out := &routeTablesResponse{}
	for _, rt := range tables {
		if matches(rt, fs, keys) {
			out.RouteTables = append(out.RouteTables, routeTableToXML(sc, rt))
		}
	}
	return out, nil
}

func routeTableToXML(sc *scenario.Scenario, rt scenario.RouteTable) routeTableXML {
	x := routeTableXML{
		ID:      rt.ID,
		VpcID:   sc.Instance.VPCID,
		OwnerID: sc.AccountID,
	}
	if rt.Main {
		x.Associations = append(x.Associations, associationXML{
			ID:           fakeID("rtbassoc-", rt.ID, "main"),
			RouteTableID: rt.ID,
			Main:         true,
			State:        "associated",
		})
	}
	for _, subnet := range rt.Subnets {
		x.Associations = append(x.Associations, associationXML{
			ID:           fakeID("rtbassoc-", rt.ID, subnet),
			RouteTableID: rt.ID,
			SubnetID:     subnet,
			State:        "associated",
		})
	}
	for _, r := range rt.Routes {
		x.Routes = append(x.Routes, routeToXML(r))
	}
	return x
}

func routeToXML(r scenario.Route) routeXML {
	x := routeXML{State: r.State, Origin: r.Origin}
	if x.State == "" {
		x.State = "active"
	}
	if x.Origin == "" {
		x.Origin = "CreateRoute"
	}

	// The scenario checked the CIDR; only its family matters here.
	switch d, err := netip.ParsePrefix(r.Destination); {
	case r.PrefixList != "":
		x.DestinationPrefixListID = r.PrefixList
	case err == nil && d.Addr().Is6():
		x.DestinationIpv6CidrBlock = r.Destination
	default:
		x.DestinationCidrBlock = r.Destination
	}

	t := r.Target
	switch {
	case strings.HasPrefix(t, "nat-"):
		x.NatGatewayID = t
	case strings.HasPrefix(t, "tgw-"):
		x.TransitGatewayID = t
	case strings.HasPrefix(t, "pcx-"):
		x.VpcPeeringConnectionID = t
	case strings.HasPrefix(t, "eigw-"):
		x.EgressOnlyInternetGatewayID = t
	case strings.HasPrefix(t, "eni-"):
		x.NetworkInterfaceID = t
	case strings.HasPrefix(t, "i-"):
		x.InstanceID = t
	case strings.HasPrefix(t, "cagw-"):
		x.CarrierGatewayID = t
	case strings.HasPrefix(t, "lgw-"):
		x.LocalGatewayID = t
	default:
		// local, igw-, vpce-, vgw-: EC2 reports all of these as gatewayId.
		x.GatewayID = t
	}
	return x
}

// fakeID makes a stable id for things a scenario does not name, such as
// association ids: the same inputs always give the same id, shaped like
// EC2's (a prefix and 17 hex digits).
func fakeID(prefix string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + hex.EncodeToString(h[:])[:17]
}
