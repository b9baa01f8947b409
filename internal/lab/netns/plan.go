package netns

import (
	"fmt"
	"net/netip"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// The address plan. The VPC uses private space and everything "public"
// uses documentation ranges (RFC 5737); both exist only inside the lab's
// namespaces.
//
//	instance ns  eth  10.16.1.10/24      the instance, default via 10.16.1.1
//	router ns    sub  10.16.1.1/24       the subnet's gateway
//	                  169.254.169.254/32 instance metadata (ec2-metadata-mock)
//	             lo   10.16.0.2/32       the VPC resolver (VPC base + 2)
//	             lo   10.16.2.20/32      the EC2 API's interface endpoint
//	             pub  192.0.2.10/24      the instance's public address: what
//	                                     the internet gateway NATs it to
//	service ns   eth  192.0.2.1/24       the AWS side
//	                  198.51.100.10/32   S3, inside the S3 prefix list
const (
	Region     = "us-east-1"
	AccountID  = "111122223333"
	VPCCIDR    = "10.16.0.0/16"
	SubnetCIDR = "10.16.1.0/24"
	InstanceIP = "10.16.1.10"
	SubnetGW   = "10.16.1.1"
	IMDSIP     = "169.254.169.254"
	ResolverIP = "10.16.0.2"
	EC2IP      = "10.16.2.20"
	PublicIP   = "192.0.2.10"
	ServiceIP  = "192.0.2.1"
	S3IP       = "198.51.100.10"

	// S3CIDR is the S3 prefix list's only entry.
	S3CIDR = "198.51.100.0/24"

	subnetBits = 24
	publicBits = 24
)

// The AWS names the lab's servers answer for.
const (
	S3Name  = "s3." + Region + ".amazonaws.com"
	EC2Name = "ec2." + Region + ".amazonaws.com"
)

// The ids the EC2 API stand-in reports.
const (
	InstanceID      = "i-0a1b2c3d4e5f60718"
	VPCID           = "vpc-0lab0000000000001"
	SubnetID        = "subnet-0lab000000000001"
	RouteTableID    = "rtb-0lab000000000001"
	MainTableID     = "rtb-0main00000000001"
	PrefixListID    = "pl-63a5400a"
	GatewayEndpoint = "vpce-0gw0000000000001"
	EC2Endpoint     = "vpce-0ec2000000000001"
	InternetGateway = "igw-0lab00000000001"
	DeletedNAT      = "nat-0deleted000000001"
)

// Path is the way the subnet's route table sends S3 traffic. SetPath
// changes the route table the EC2 API reports and the router namespace's
// kernel routes together, so the two always tell the same story.
type Path string

const (
	// ViaGatewayEndpoint: the prefix list routes to the gateway endpoint.
	// The router forwards S3 traffic as it is; S3 sees the private
	// address.
	ViaGatewayEndpoint Path = "gateway-endpoint"

	// ViaInternetGateway: the default route goes to the internet gateway.
	// The router masquerades the instance as PublicIP.
	ViaInternetGateway Path = "internet-gateway"

	// ViaBlackhole: the default route points at a deleted NAT gateway.
	// The router drops the packets silently, as AWS does, so a connect
	// times out.
	ViaBlackhole Path = "blackhole"

	// ViaNoRoute: nothing but the local route. AWS would drop the
	// packets; the router's prohibit route answers with an ICMP
	// "administratively prohibited" instead, so the connect fails at
	// once with "no route to host".
	ViaNoRoute Path = "no-route"
)

// Scenario describes the lab as the EC2 API and IMDS report it when the
// subnet's route table is set for p.
func Scenario(p Path, buckets []string) *scenario.Scenario {
	local := scenario.Route{Destination: VPCCIDR, Target: "local", Origin: "CreateRouteTable"}
	routes := []scenario.Route{local}
	// Every VPC here reaches the EC2 API through an interface endpoint
	// with private DNS, so the agent can read its route table whatever
	// the S3 path.
	endpoints := []scenario.Endpoint{{
		ID:         EC2Endpoint,
		Type:       "Interface",
		Service:    "com.amazonaws." + Region + ".ec2",
		PrivateDNS: true,
		DNSNames:   []string{EC2Name},
		Subnets:    []string{SubnetID},
	}}

	switch p {
	case ViaGatewayEndpoint:
		routes = append(routes, scenario.Route{PrefixList: PrefixListID, Target: GatewayEndpoint})
		endpoints = append(endpoints, scenario.Endpoint{
			ID:          GatewayEndpoint,
			Type:        "Gateway",
			Service:     "com.amazonaws." + Region + ".s3",
			RouteTables: []string{RouteTableID},
		})
	case ViaInternetGateway:
		routes = append(routes, scenario.Route{Destination: "0.0.0.0/0", Target: InternetGateway})
	case ViaBlackhole:
		routes = append(routes, scenario.Route{Destination: "0.0.0.0/0", Target: DeletedNAT, State: "blackhole"})
	case ViaNoRoute:
	}

	s := &scenario.Scenario{
		Name:        "netns-" + string(p),
		Description: "Network-namespace VPC; S3 traffic goes " + string(p) + ".",
		Region:      Region,
		AccountID:   AccountID,
		Instance: scenario.Instance{
			ID:               InstanceID,
			AvailabilityZone: Region + "a",
			MAC:              "0e:12:34:56:78:9a",
			VPCID:            VPCID,
			VPCCIDR:          VPCCIDR,
			SubnetID:         SubnetID,
			SubnetCIDR:       SubnetCIDR,
			PrivateIP:        InstanceIP,
			PublicIP:         PublicIP,
		},
		RouteTables: []scenario.RouteTable{
			{ID: MainTableID, Main: true, Routes: []scenario.Route{local}},
			{ID: RouteTableID, Subnets: []string{SubnetID}, Routes: routes},
		},
		PrefixLists: []scenario.PrefixList{{
			ID:    PrefixListID,
			Name:  "com.amazonaws." + Region + ".s3",
			CIDRs: []string{S3CIDR},
		}},
		Endpoints: endpoints,
		DNS: []scenario.Record{
			{Name: S3Name, A: []string{S3IP}},
			{Name: "*." + S3Name, A: []string{S3IP}},
			{Name: EC2Name, A: []string{EC2IP}},
		},
	}
	for _, b := range buckets {
		s.Buckets = append(s.Buckets, scenario.Bucket{Name: b, Region: Region})
	}
	return s
}

// routerRoute is the router namespace's route for S3 traffic on path p,
// as `ip route` arguments, and whether the router masquerades it.
func routerRoute(p Path) (route []string, masquerade bool, err error) {
	switch p {
	case ViaGatewayEndpoint:
		return []string{S3CIDR, "via", ServiceIP}, false, nil
	case ViaInternetGateway:
		return []string{"default", "via", ServiceIP}, true, nil
	case ViaBlackhole:
		return []string{"blackhole", "default"}, false, nil
	case ViaNoRoute:
		return []string{"prohibit", "default"}, false, nil
	}
	return nil, false, fmt.Errorf("unknown path %q", p)
}

func mustPrefix(addr string, bits int) string {
	return netip.PrefixFrom(netip.MustParseAddr(addr), bits).String()
}
