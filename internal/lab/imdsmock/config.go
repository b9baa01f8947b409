package imdsmock

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// pendingTime is the launch time the identity document reports. Fixed, so
// the mock answers the same on every run; the SDK parses it as RFC 3339
// and fails on anything else.
const pendingTime = "2026-01-05T08:00:00Z"

// The mock keeps its built-in values for everything the file leaves out;
// these are the ones the scenario does not describe but which would
// otherwise contradict it.
const (
	docVersion   = "2017-09-30"
	instanceType = "t3.micro"
	architecture = "x86_64"
	imageID      = "ami-0lab00000000000001"
)

// config renders the mock's override file for s. Keys are the mock's own
// names (metadata.values and dynamic.values in its defaults file); changing
// "mac" makes the mock rewrite every per-MAC path to the new address.
func config(s *scenario.Scenario) ([]byte, error) {
	in := s.Instance
	host := privateDNSName(s.Region, in.PrivateIP)

	md := map[string]string{
		"instance-id":                 in.ID,
		"instance-type":               instanceType,
		"ami-id":                      imageID,
		"placement-availability-zone": in.AvailabilityZone,
		"placement-region":            s.Region,
		"local-ipv4":                  in.PrivateIP,
		"hostname":                    host,
		"local-hostname":              host,
		"public-ipv4":                 in.PublicIP,
		"public-hostname":             "",

		"mac":                        in.MAC,
		"mac-mac":                    in.MAC,
		"mac-owner-id":               s.AccountID,
		"mac-vpc-id":                 in.VPCID,
		"mac-vpc-ipv4-cidr-block":    in.VPCCIDR,
		"mac-vpc-ipv4-cidr-blocks":   in.VPCCIDR,
		"mac-subnet-id":              in.SubnetID,
		"mac-subnet-ipv4-cidr-block": in.SubnetCIDR,
		"mac-local-ipv4s":            in.PrivateIP,
		"mac-local-hostname":         host,
		"mac-public-ipv4s":           in.PublicIP,
		"mac-public-hostname":        "",

		// The association path ends in the public address and answers
		// the private one, as on EC2.
		"mac-ipv4-associations": "",

		// Scenarios have no IPv6 yet; the mock's built-in addresses
		// would otherwise show up as the instance's.
		"mac-ipv6-associations":       "",
		"mac-subnet-ipv6-cidr-blocks": "",
		"mac-vpc-ipv6-cidr-blocks":    "",
	}
	if in.PublicIP != "" {
		md["mac-ipv4-associations"] = in.PrivateIP
	}

	// The SDK's GetRegion and our Load read the region from this
	// document, not from placement/region. Every field is given because
	// the mock's decoder would keep built-in values for any left out.
	doc := map[string]any{
		"accountId":               s.AccountID,
		"architecture":            architecture,
		"availabilityZone":        in.AvailabilityZone,
		"billingProducts":         nil,
		"devpayProductCodes":      nil,
		"marketplaceProductCodes": nil,
		"imageId":                 imageID,
		"instanceId":              in.ID,
		"instanceType":            instanceType,
		"kernelId":                nil,
		"pendingTime":             pendingTime,
		"privateIp":               in.PrivateIP,
		"ramdiskId":               nil,
		"region":                  s.Region,
		"version":                 docVersion,
	}

	file := map[string]any{
		"metadata": map[string]any{"values": md},
		"dynamic": map[string]any{
			"values": map[string]any{"instance-identity-document": doc},
		},
	}
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode mock config: %w", err)
	}
	return data, nil
}

// privateDNSName is the name EC2 gives a private address: ec2.internal in
// us-east-1, REGION.compute.internal elsewhere.
func privateDNSName(region, ip string) string {
	label := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if region == "us-east-1" {
		return label + ".ec2.internal"
	}
	return label + "." + region + ".compute.internal"
}
