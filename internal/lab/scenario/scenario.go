// Package scenario reads the files that describe a lab VPC: one instance, its
// subnet and route tables, the VPC's S3 endpoints and prefix lists, the names
// the lab resolver answers, and the S3 servers and buckets behind them.
//
// Addresses in a loopback lab live in 127.0.0.0/8, so that every "public" or
// "private" address a scenario names is one this machine owns: a scenario
// maps the AWS address plan onto loopback, it does not pretend to leave it.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"gopkg.in/yaml.v3"
)

// Scenario is one lab VPC.
type Scenario struct {
	// Name is a short id, for example "gateway-endpoint".
	Name string `yaml:"name"`

	// Description says in a sentence what the scenario shows.
	Description string `yaml:"description"`

	// Region is the instance's region, for example us-east-1.
	Region string `yaml:"region"`

	// AccountID is the twelve-digit owner of the VPC.
	AccountID string `yaml:"account_id"`

	Instance    Instance     `yaml:"instance"`
	RouteTables []RouteTable `yaml:"route_tables"`
	PrefixLists []PrefixList `yaml:"prefix_lists"`
	Endpoints   []Endpoint   `yaml:"endpoints"`

	// DNS lists the names the lab resolver answers; every other name gets
	// NXDOMAIN.
	DNS []Record `yaml:"dns"`

	// S3 lists the lab's S3 servers, one per region.
	S3 []S3Server `yaml:"s3"`

	// Buckets are created before the agent runs.
	Buckets []Bucket `yaml:"buckets"`

	// AgentSecret, when set, is the secret access key the agent is given
	// instead of the right one: keys that were rotated, revoked or
	// mistyped. The lab's servers still expect the right one.
	AgentSecret string `yaml:"agent_secret"`

	// Proxy, when set, is an HTTP proxy the agent is pointed at through
	// HTTP_PROXY and HTTPS_PROXY, as an instance behind a corporate
	// proxy is.
	Proxy *Proxy `yaml:"proxy"`
}

// Proxy is the lab's forward proxy.
type Proxy struct {
	// Address is the loopback address it listens on.
	Address string `yaml:"address"`

	// NoProxy is the NO_PROXY the agent gets; empty leaves it unset.
	NoProxy string `yaml:"no_proxy"`
}

// Instance is what IMDS reports about the lab's instance.
type Instance struct {
	ID               string `yaml:"id"`
	AvailabilityZone string `yaml:"availability_zone"`
	MAC              string `yaml:"mac"`
	VPCID            string `yaml:"vpc_id"`
	VPCCIDR          string `yaml:"vpc_cidr"`
	SubnetID         string `yaml:"subnet_id"`
	SubnetCIDR       string `yaml:"subnet_cidr"`
	PrivateIP        string `yaml:"private_ip"`

	// PublicIP is empty for an instance without one.
	PublicIP string `yaml:"public_ip"`
}

// RouteTable is one route table of the VPC.
type RouteTable struct {
	ID   string `yaml:"id"`
	Main bool   `yaml:"main"`

	// Subnets are the subnets explicitly associated with the table.
	Subnets []string `yaml:"subnets"`

	Routes []Route `yaml:"routes"`
}

// Route is one route. Exactly one of Destination and PrefixList is set.
type Route struct {
	Destination string `yaml:"destination"`
	PrefixList  string `yaml:"prefix_list"`

	// Target is the gateway, NAT gateway, endpoint or other id, or
	// "local".
	Target string `yaml:"target"`

	// State is active (the default) or blackhole.
	State string `yaml:"state"`

	// Origin is CreateRoute (the default), CreateRouteTable or
	// EnableVgwRoutePropagation.
	Origin string `yaml:"origin"`
}

// PrefixList is a managed prefix list.
type PrefixList struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	CIDRs []string `yaml:"cidrs"`
}

// Endpoint is a VPC endpoint.
type Endpoint struct {
	ID      string `yaml:"id"`
	Type    string `yaml:"type"` // Gateway or Interface
	Service string `yaml:"service"`

	// State defaults to available.
	State string `yaml:"state"`

	// RouteTables are a gateway endpoint's associated tables.
	RouteTables []string `yaml:"route_tables"`

	// Policy is the endpoint policy as JSON; empty means full access.
	Policy string `yaml:"policy"`

	// PrivateDNS, DNSNames and Subnets describe an interface endpoint.
	PrivateDNS bool     `yaml:"private_dns"`
	DNSNames   []string `yaml:"dns_names"`
	Subnets    []string `yaml:"subnets"`
}

// Record is one name the lab resolver answers. A name starting with "*."
// answers for every name below it.
type Record struct {
	Name string   `yaml:"name"`
	A    []string `yaml:"a"`
	AAAA []string `yaml:"aaaa"`

	// TTL in seconds; 60 when zero.
	TTL uint32 `yaml:"ttl"`
}

// S3Server is one region's S3 service in the lab.
type S3Server struct {
	Region string `yaml:"region"`

	// Fronts are the addresses the service answers on.
	Fronts []Front `yaml:"fronts"`
}

// Front is one address an S3 service answers on, and the address a
// connection through it appears to come from, as S3 would see it: the
// instance's private address through a gateway or interface endpoint, its
// public address through an internet gateway, the NAT gateway's address
// through a NAT gateway.
type Front struct {
	Address string `yaml:"address"`
	Source  string `yaml:"source"`
}

// Bucket is a bucket the lab creates.
type Bucket struct {
	Name   string `yaml:"name"`
	Region string `yaml:"region"`

	// Policy is the bucket policy as JSON, as AWS would hold it and
	// GetBucketPolicy return it; empty means none.
	Policy string `yaml:"policy"`

	// LabPolicy is what versitygw enforces instead of Policy, when
	// Policy uses condition keys only AWS can judge (aws:SourceVpce,
	// aws:SourceVpc): the same intent, written on aws:SourceIp against
	// the source addresses the lab's fronts give each path. The fronts
	// then answer GetBucketPolicy with Policy, so the agent reads what a
	// user would have written. Empty means versitygw enforces Policy.
	LabPolicy string `yaml:"lab_policy"`

	// Objects are written into the bucket before the agent runs, keyed by
	// object key.
	Objects map[string]string `yaml:"objects"`
}

// Load reads and checks a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a scenario strictly: an unknown key is an error naming the
// file and line, and so is a value that does not make sense.
func Parse(name string, data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)

	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &s, nil
}

// FrontAddresses returns every address an S3 front listens on.
func (s *Scenario) FrontAddresses() []netip.Addr {
	var out []netip.Addr
	for _, srv := range s.S3 {
		for _, f := range srv.Fronts {
			out = append(out, netip.MustParseAddr(f.Address))
		}
	}
	return out
}

func (s *Scenario) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if s.Name == "" {
		bad("name: missing")
	}
	if s.Region == "" {
		bad("region: missing")
	}
	if s.Instance.ID == "" || s.Instance.SubnetID == "" || s.Instance.VPCID == "" {
		bad("instance: id, subnet_id and vpc_id are required")
	}
	checkPrefix(bad, "instance.vpc_cidr", s.Instance.VPCCIDR)
	checkPrefix(bad, "instance.subnet_cidr", s.Instance.SubnetCIDR)
	checkAddr(bad, "instance.private_ip", s.Instance.PrivateIP)
	if s.Instance.PublicIP != "" {
		checkAddr(bad, "instance.public_ip", s.Instance.PublicIP)
	}

	mains := 0
	for i, rt := range s.RouteTables {
		if rt.Main {
			mains++
		}
		for j, r := range rt.Routes {
			key := fmt.Sprintf("route_tables[%d].routes[%d]", i, j)
			switch {
			case (r.Destination == "") == (r.PrefixList == ""):
				bad("%s: set exactly one of destination and prefix_list", key)
			case r.Destination != "":
				checkPrefix(bad, key+".destination", r.Destination)
			}
			if r.Target == "" {
				bad("%s.target: missing", key)
			}
			if r.State != "" && r.State != "active" && r.State != "blackhole" {
				bad("%s.state: %q is not active or blackhole", key, r.State)
			}
		}
	}
	if mains != 1 {
		bad("route_tables: want exactly one main table, have %d", mains)
	}

	for i, pl := range s.PrefixLists {
		for j, c := range pl.CIDRs {
			checkPrefix(bad, fmt.Sprintf("prefix_lists[%d].cidrs[%d]", i, j), c)
		}
	}
	for i, ep := range s.Endpoints {
		if ep.Type != "Gateway" && ep.Type != "Interface" {
			bad("endpoints[%d].type: %q is not Gateway or Interface", i, ep.Type)
		}
	}
	for i, r := range s.DNS {
		for j, a := range r.A {
			checkAddr(bad, fmt.Sprintf("dns[%d].a[%d]", i, j), a)
		}
		for j, a := range r.AAAA {
			checkAddr(bad, fmt.Sprintf("dns[%d].aaaa[%d]", i, j), a)
		}
	}
	for i, srv := range s.S3 {
		for j, f := range srv.Fronts {
			key := fmt.Sprintf("s3[%d].fronts[%d]", i, j)
			checkLoopback(bad, key+".address", f.Address)
			checkLoopback(bad, key+".source", f.Source)
		}
	}
	if s.Proxy != nil {
		checkLoopback(bad, "proxy.address", s.Proxy.Address)
	}
	for i, b := range s.Buckets {
		if !s.hasRegion(b.Region) {
			bad("buckets[%d].region: no s3 server for region %q", i, b.Region)
		}
	}
	return errors.Join(errs...)
}

func (s *Scenario) hasRegion(region string) bool {
	for _, srv := range s.S3 {
		if srv.Region == region {
			return true
		}
	}
	return false
}

func checkPrefix(bad func(string, ...any), key, v string) {
	if _, err := netip.ParsePrefix(v); err != nil {
		bad("%s: %q is not a CIDR", key, v)
	}
}

func checkAddr(bad func(string, ...any), key, v string) {
	if _, err := netip.ParseAddr(v); err != nil {
		bad("%s: %q is not an IP address", key, v)
	}
}

// checkLoopback insists on loopback addresses, so that the lab's servers and
// the sources they dial from never reach past this machine.
func checkLoopback(bad func(string, ...any), key, v string) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		bad("%s: %q is not an IP address", key, v)
		return
	}
	if !a.IsLoopback() {
		bad("%s: %s is not a loopback address", key, v)
	}
}
