// Package report holds the result of one diagnosis and renders it, for
// people as text and for programs as versioned JSON.
//
// The JSON document is the stable interface: fields are only ever added
// within a schema version; a renamed or removed field, or a changed meaning,
// gets a new version. Durations are seconds as numbers, times are RFC 3339.
package report

import (
	"time"
)

// Schema names the JSON document's format and version.
const Schema = "pathagent.report/v1"

// Status is the overall verdict of a run.
type Status string

// The verdicts, each with its own exit code.
const (
	// OK: every probe of every bucket succeeded.
	OK Status = "ok"

	// Failed: the agent ran, and at least one probe failed.
	Failed Status = "failed"

	// Error: the agent could not do its job (no identity, no bucket to
	// probe, a bad configuration); no probe verdict is given.
	Error Status = "error"
)

// ExitCode maps a status to the process exit code `pathagent once` ends with.
func (s Status) ExitCode() int {
	switch s {
	case OK:
		return 0
	case Failed:
		return 1
	default:
		return 2
	}
}

// Report is one diagnosis.
type Report struct {
	Schema string    `json:"schema"`
	Time   time.Time `json:"time"`
	Status Status    `json:"status"`

	// Error says why the agent could not run, when Status is Error.
	Error string `json:"error,omitempty"`

	Identity *Identity `json:"identity,omitempty"`
	Network  *Network  `json:"network,omitempty"`

	// Resolver is the DNS server S3 names were resolved with.
	Resolver string `json:"resolver,omitempty"`

	Buckets  []Bucket  `json:"buckets"`
	Findings []Finding `json:"findings"`
}

// Identity is the instance as IMDS describes it.
type Identity struct {
	InstanceID       string   `json:"instance_id"`
	Region           string   `json:"region"`
	AvailabilityZone string   `json:"availability_zone"`
	AccountID        string   `json:"account_id,omitempty"`
	MAC              string   `json:"mac"`
	VPCID            string   `json:"vpc_id"`
	VPCCIDRs         []string `json:"vpc_cidrs"`
	SubnetID         string   `json:"subnet_id"`
	SubnetCIDR       string   `json:"subnet_cidr,omitempty"`
	PrivateIPs       []string `json:"private_ips"`
	PublicIPs        []string `json:"public_ips"`

	// IMDSVersion is 2 when a session token was used, 1 when the agent
	// was allowed to fall back and did.
	IMDSVersion int `json:"imds_version"`

	// Credentials names the SDK provider the probes' credentials came
	// from: EC2RoleProvider for the instance role, EnvConfigCredentials,
	// SharedConfigCredentials and so on. Never the keys themselves.
	Credentials string `json:"credentials,omitempty"`
}

// Network is what the EC2 API said about the subnet.
type Network struct {
	RouteTable  *RouteTable  `json:"route_table"`
	Endpoints   []Endpoint   `json:"endpoints"`
	PrefixLists []PrefixList `json:"prefix_lists"`

	// Problems are the EC2 calls that failed; what they would have told
	// is missing above.
	Problems []Problem `json:"problems"`
}

// RouteTable is the subnet's effective route table.
type RouteTable struct {
	ID string `json:"id"`

	// Implicit is true when the subnet has no association of its own and
	// uses the VPC's main table.
	Implicit bool    `json:"implicit"`
	Routes   []Route `json:"routes"`
}

// Route is one route, its destination a CIDR or a prefix list id.
type Route struct {
	Destination string `json:"destination"`
	Target      string `json:"target"`
	State       string `json:"state"` // active or blackhole
}

// Endpoint is one of the VPC's S3 endpoints.
type Endpoint struct {
	ID          string   `json:"id"`
	Type        string   `json:"type"` // Gateway or Interface
	State       string   `json:"state"`
	RouteTables []string `json:"route_tables,omitempty"`
	PrivateDNS  bool     `json:"private_dns,omitempty"`

	// Addresses are an interface endpoint's addresses, as its DNS names
	// resolved.
	Addresses []string `json:"addresses,omitempty"`

	// HasPolicy tells whether the endpoint carries a policy document.
	// The document itself stays out of the report.
	HasPolicy bool `json:"has_policy"`
}

// PrefixList is one prefix list a route uses.
type PrefixList struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	CIDRs []string `json:"cidrs"`
}

// Problem is a failed EC2 call.
type Problem struct {
	Call    string `json:"call"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Bucket is everything learned about one bucket.
type Bucket struct {
	Name string `json:"name"`

	// Region is where the probes were sent.
	Region string `json:"region"`

	// RedirectedFrom is the region first tried, when S3 answered with
	// the bucket's real region.
	RedirectedFrom string `json:"redirected_from,omitempty"`

	// Path is the path of the first probe that chose an address; the
	// others follow the same route unless the world changed mid-cycle.
	Path Path `json:"path"`

	// ExpectPath is the configured path kind the bucket should take;
	// empty when none is configured.
	ExpectPath string `json:"expect_path,omitempty"`

	// DNS is how the bucket's S3 name resolved, for the first probe.
	DNS *DNS `json:"dns,omitempty"`

	Probes []Probe `json:"probes"`

	// Swept counts probe objects an interrupted earlier run left behind,
	// which this run deleted.
	Swept int `json:"swept_objects,omitempty"`
}

// Path is how traffic left the subnet.
type Path struct {
	// Kind is one of gateway_endpoint, interface_endpoint,
	// internet_gateway, nat_gateway, transit_gateway, vpc_peering,
	// egress_only_internet_gateway, other, blackhole, no_route, proxy,
	// unknown.
	Kind         string `json:"kind"`
	Target       string `json:"target,omitempty"`
	RouteTableID string `json:"route_table,omitempty"`

	// Route is the chosen route's destination (CIDR or prefix list id)
	// and Matched the prefix that covered the address.
	Route   string `json:"route,omitempty"`
	Matched string `json:"matched,omitempty"`

	Note string `json:"note,omitempty"`
}

// DNS is one resolution of an S3 name.
type DNS struct {
	Name      string      `json:"name"`
	Server    string      `json:"server"`
	CNAMEs    []string    `json:"cnames,omitempty"`
	Answers   []DNSAnswer `json:"answers"`
	LatencyS  float64     `json:"latency_seconds"`
	Error     string      `json:"error,omitempty"`
	Transport string      `json:"transport,omitempty"`
}

// DNSAnswer is one address record.
type DNSAnswer struct {
	Address string `json:"address"`
	TTL     uint32 `json:"ttl"`
}

// Probe is one probe request.
type Probe struct {
	Op      string `json:"op"` // list, put, get or delete
	Success bool   `json:"success"`

	// Skipped: not sent, because the probe it needs failed.
	Skipped bool `json:"skipped,omitempty"`

	Key string `json:"key,omitempty"`

	// FailedIn is resolve, connect, tls, request or verify.
	FailedIn string `json:"failed_in,omitempty"`

	// Reason classifies a failure for alerting: access_denied,
	// wrong_region, dns, connect_timeout and so on (docs/metrics.md).
	Reason     string `json:"reason,omitempty"`
	ErrorCode  string `json:"error_code,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error,omitempty"`
	RequestID  string `json:"request_id,omitempty"`

	// Remote is the address:port the connection used.
	Remote string `json:"remote,omitempty"`
	Proxy  string `json:"proxy,omitempty"`
	Path   Path   `json:"path"`

	LatencyS float64 `json:"latency_seconds"`
	Phases   *Phases `json:"phases,omitempty"`
}

// Phases splits a probe's latency, in seconds.
type Phases struct {
	Resolve   float64 `json:"resolve_seconds"`
	Connect   float64 `json:"connect_seconds"`
	TLS       float64 `json:"tls_seconds"`
	FirstByte float64 `json:"first_byte_seconds"`
}

// Severity grades a finding.
type Severity string

// The severities.
const (
	// Critical: a probe fails because of it.
	Critical Severity = "critical"

	// Warning: access works, but not the way it should (cost, exposure,
	// a path the policy may soon refuse).
	Warning Severity = "warning"

	// Info: worth knowing, nothing to fix.
	Info Severity = "info"
)

// Finding is one thing the diagnosis established, in plain words.
type Finding struct {
	// Code is stable and meant for programs, for example
	// "gateway_endpoint_not_associated".
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`

	// Bucket is the bucket it concerns, or empty for the instance.
	Bucket string `json:"bucket,omitempty"`

	// Summary says what is wrong; Fix says what would mend it.
	Summary string `json:"summary"`
	Fix     string `json:"fix,omitempty"`
}
