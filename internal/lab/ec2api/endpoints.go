package ec2api

import (
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// fullAccessPolicy is the policy EC2 reports for an endpoint created
// without one.
const fullAccessPolicy = `{"Version":"2008-10-17","Statement":[` +
	`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`

type vpcEndpointsResponse struct {
	envelope
	Endpoints []endpointXML `xml:"vpcEndpointSet>item"`
}

type endpointXML struct {
	ID             string `xml:"vpcEndpointId"`
	Type           string `xml:"vpcEndpointType"`
	VpcID          string `xml:"vpcId"`
	ServiceName    string `xml:"serviceName"`
	State          string `xml:"state"`
	PolicyDocument string `xml:"policyDocument"`
	OwnerID        string `xml:"ownerId"`
	IPAddressType  string `xml:"ipAddressType"`

	// Gateway endpoints only.
	RouteTableIDs []string `xml:"routeTableIdSet>item"`

	// Interface endpoints only.
	SubnetIDs           []string      `xml:"subnetIdSet>item"`
	NetworkInterfaceIDs []string      `xml:"networkInterfaceIdSet>item"`
	DNSEntries          []dnsEntryXML `xml:"dnsEntrySet>item"`
	PrivateDNSEnabled   *bool         `xml:"privateDnsEnabled,omitempty"`

	RequesterManaged bool `xml:"requesterManaged"`
}

type dnsEntryXML struct {
	DNSName string `xml:"dnsName"`
}

func endpointFilters(vpcID string) filterKeys[scenario.Endpoint] {
	one := func(v string) []string { return []string{v} }
	return filterKeys[scenario.Endpoint]{
		"vpc-id":             func(scenario.Endpoint) []string { return one(vpcID) },
		"vpc-endpoint-id":    func(e scenario.Endpoint) []string { return one(e.ID) },
		"service-name":       func(e scenario.Endpoint) []string { return one(e.Service) },
		"vpc-endpoint-type":  func(e scenario.Endpoint) []string { return one(e.Type) },
		"vpc-endpoint-state": func(e scenario.Endpoint) []string { return one(endpointState(e)) },
	}
}

func endpointState(e scenario.Endpoint) string {
	if e.State == "" {
		return "available"
	}
	return e.State
}

func describeVpcEndpoints(sc *scenario.Scenario, p params) (response, error) {
	keys := endpointFilters(sc.Instance.VPCID)
	fs, err := filters(p, keys)
	if err != nil {
		return nil, err
	}
	eps, err := pick(sc.Endpoints, p.list("VpcEndpointId"),
		func(e scenario.Endpoint) string { return e.ID },
		"InvalidVpcEndpointId.NotFound", "VPC endpoint")
	if err != nil {
		return nil, err
	}

	out := &vpcEndpointsResponse{}
	for _, e := range eps {
		if matches(e, fs, keys) {
			out.Endpoints = append(out.Endpoints, endpointToXML(sc, e))
		}
	}
	return out, nil
}

func endpointToXML(sc *scenario.Scenario, e scenario.Endpoint) endpointXML {
	x := endpointXML{
		ID:             e.ID,
		Type:           e.Type,
		VpcID:          sc.Instance.VPCID,
		ServiceName:    e.Service,
		State:          endpointState(e),
		PolicyDocument: e.Policy,
		OwnerID:        sc.AccountID,
		IPAddressType:  "ipv4",
	}
	if x.PolicyDocument == "" {
		x.PolicyDocument = fullAccessPolicy
	}
	if e.Type == "Gateway" {
		x.RouteTableIDs = e.RouteTables
		return x
	}

	// An interface endpoint has one network interface per subnet. The
	// scenario does not name them, so they get stable made-up ids.
	x.SubnetIDs = e.Subnets
	for _, subnet := range e.Subnets {
		x.NetworkInterfaceIDs = append(x.NetworkInterfaceIDs,
			fakeID("eni-", e.ID, subnet))
	}
	for _, name := range e.DNSNames {
		x.DNSEntries = append(x.DNSEntries, dnsEntryXML{DNSName: name})
	}
	privateDNS := e.PrivateDNS
	x.PrivateDNSEnabled = &privateDNS
	return x
}
