// Package topology describes the network an instance sits in, as the EC2 API
// reports it: the subnet's effective route table, the VPC's S3 endpoints and
// the CIDRs behind the prefix lists the routes name.
package topology

import (
	"net/netip"
	"time"
)

// Topology is what the agent learned about its subnet from the EC2 API.
// A zero Topology means nothing was learned; the fields that could not be
// read are listed in Problems rather than guessed.
type Topology struct {
	// RouteTable is the subnet's effective route table, or nil when it
	// could not be read.
	RouteTable *RouteTable

	// Endpoints are the VPC's S3 endpoints of every type and state.
	// Nil with a problem recorded means they could not be listed.
	Endpoints []Endpoint

	// PrefixLists holds the entries of every prefix list RouteTable
	// refers to, keyed by prefix list id. A list whose entries could
	// not be read is absent and has a problem recorded.
	PrefixLists map[string]PrefixList

	// S3PrefixListID is the id of the region's S3 prefix list (also in
	// PrefixLists), read even when no route names it, so that any
	// address can be checked against S3's published ranges. Empty when
	// it could not be read.
	S3PrefixListID string

	// Problems lists every EC2 call that failed, in call order.
	Problems []Problem

	// FetchedAt is when the calls finished.
	FetchedAt time.Time
}

// RouteTable is one VPC route table.
type RouteTable struct {
	ID string

	// Main reports whether this is the VPC's main table.
	Main bool

	// Implicit reports whether the subnet uses this table only because it
	// is the main table, with no explicit association.
	Implicit bool

	Routes []Route
}

// Route is one entry of a route table. Exactly one of Destination and
// PrefixListID is set.
type Route struct {
	// Destination is the CIDR the route covers; invalid when the route
	// names a prefix list instead.
	Destination netip.Prefix

	// PrefixListID is the destination prefix list (pl-...), if any.
	PrefixListID string

	// Target is the id of what the route sends traffic to: "local",
	// igw-..., nat-..., vpce-..., tgw-..., pcx-..., eigw-..., eni-...,
	// i-..., vgw-... and so on.
	Target string

	// Blackhole reports whether the route's state is blackhole: its
	// target is gone and matching traffic is dropped.
	Blackhole bool

	// Origin is how the route was made: CreateRouteTable, CreateRoute or
	// EnableVgwRoutePropagation.
	Origin string
}

// Propagated reports whether the route was propagated by a virtual
// private gateway, which gives it the lowest priority among equal matches.
func (r Route) Propagated() bool { return r.Origin == "EnableVgwRoutePropagation" }

// PrefixList is a managed prefix list and its CIDRs.
type PrefixList struct {
	ID   string
	Name string // for example com.amazonaws.us-east-1.s3

	CIDRs []netip.Prefix
}

// EndpointType is a VPC endpoint's type as the EC2 API spells it.
type EndpointType string

// The endpoint types that serve S3.
const (
	Gateway   EndpointType = "Gateway"
	Interface EndpointType = "Interface"
)

// Endpoint is one VPC endpoint for S3.
type Endpoint struct {
	ID          string
	Type        EndpointType
	ServiceName string // com.amazonaws.REGION.s3
	State       string // available, pending, deleting, ...

	// RouteTableIDs are the route tables a gateway endpoint is associated
	// with.
	RouteTableIDs []string

	// PolicyDocument is the endpoint policy, as JSON. Empty means the
	// API returned none.
	PolicyDocument string

	// PrivateDNS reports whether an interface endpoint answers for the
	// service's default names inside the VPC.
	PrivateDNS bool

	// DNSNames are an interface endpoint's own names.
	DNSNames []string

	// SubnetIDs are the subnets an interface endpoint has a network
	// interface in.
	SubnetIDs []string
}

// Problem is one EC2 call that failed.
type Problem struct {
	// Call is the API operation, for example DescribeRouteTables.
	Call string

	// Code is the AWS error code (UnauthorizedOperation,
	// RequestLimitExceeded, ...), or empty for a transport failure.
	Code string

	// Message is the error's text.
	Message string
}
