// Package config reads pathagent's configuration file: which buckets to
// probe and how to reach them. Decoding is strict: an unknown key or a bad
// value is an error naming the file, the line and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is pathagent's configuration. The zero value probes nothing; the
// defaults for everything else are filled in by the agent.
type Config struct {
	// Buckets are the buckets to probe, in order.
	Buckets []Bucket

	// Resolver is the DNS server (host:port) the agent resolves S3 names
	// with. Empty means the first nameserver of /etc/resolv.conf, which on
	// EC2 is the VPC resolver.
	Resolver string

	// S3Endpoint overrides S3's endpoint URL; "{region}" in it stands for
	// the bucket's region. Empty means the SDK's choice, which honours
	// AWS_ENDPOINT_URL_S3.
	S3Endpoint string

	// PathStyle selects path-style S3 addressing.
	PathStyle bool

	// ProbePrefix is the key prefix for probe objects; the instance id
	// and a slash are appended. Empty means "pathagent-probe/".
	ProbePrefix string

	// Timeout bounds each probe request; zero means the default.
	Timeout time.Duration

	// AllowIMDSv1 lets the agent read instance metadata without a token
	// when none can be had. Off by default: IMDSv1 is the weaker protocol
	// and a silent fall-back hides a hop-limit problem.
	AllowIMDSv1 bool

	// Interval is the time between probe cycles in `pathagent run`; zero
	// means DefaultInterval.
	Interval time.Duration

	// MaxConcurrent bounds how many buckets are probed at once; zero
	// means DefaultMaxConcurrent.
	MaxConcurrent int

	// TopologyRefresh is how long the route table, endpoints and prefix
	// lists are trusted before they are read again; zero means
	// DefaultTopologyRefresh.
	TopologyRefresh time.Duration

	// TLSIssuers are the organizations whose certificates S3 may present;
	// a chain naming none of them means something between the instance
	// and S3 decrypts the traffic. Nil means DefaultTLSIssuers.
	TLSIssuers []string
}

// DefaultTLSIssuers are the organizations of Amazon Trust Services, which
// has issued S3's default certificates since June 2022, and of Starfield,
// which cross-signs its roots.
var DefaultTLSIssuers = []string{"Amazon", "Starfield Technologies, Inc."}

// Defaults for `pathagent run`.
const (
	// DefaultInterval: each cycle costs four S3 requests per bucket
	// (about 35,000 a month per bucket and instance at this pace), and
	// path changes are rare events that five minutes catches well
	// within any alert's patience.
	DefaultInterval = 5 * time.Minute

	// DefaultMaxConcurrent keeps a cycle over many buckets short
	// without turning the agent into a burst of connections.
	DefaultMaxConcurrent = 4

	// DefaultTopologyRefresh: a read costs four EC2 calls; 10,000
	// agents refreshing hourly make about 11 calls a second against the
	// account's shared refill of 20 a second for describe calls, and a
	// route change is picked up sooner anyway, because a changed probe
	// outcome or address triggers an early refresh.
	DefaultTopologyRefresh = time.Hour
)

// Bucket is one bucket to probe.
type Bucket struct {
	Name string

	// Region is the bucket's region when known; empty means the
	// instance's region, corrected when S3 redirects.
	Region string

	// ExpectPath is the path kind the bucket's traffic should take, for
	// example gateway_endpoint; empty means no expectation.
	ExpectPath string
}

// PathKinds are the values ExpectPath accepts: the path kinds the agent
// reports.
var PathKinds = []string{
	"gateway_endpoint", "interface_endpoint", "internet_gateway",
	"nat_gateway", "transit_gateway", "vpc_peering",
	"egress_only_internet_gateway", "other", "proxy",
}

// Error is a problem with one key of a configuration file.
type Error struct {
	File string
	Line int
	Key  string // dotted path, for example buckets[1].name
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// Load reads and checks a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Bounds on `pathagent run` settings.
const (
	// minInterval keeps a misconfigured agent from hammering S3: a
	// probe cycle is four requests per bucket.
	minInterval = 10 * time.Second

	// maxConcurrent: more parallel probes than this buys nothing on an
	// agent that is meant to be a quiet guest.
	maxConcurrent = 64

	// minTopologyRefresh keeps the agent gentle on the account's EC2
	// rate limit, which every agent and tool in the account shares.
	minTopologyRefresh = time.Minute
)

// bucketName is S3's rule for bucket names: 3 to 63 characters of lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

var regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// Parse decodes a configuration. file names the source in errors. All
// problems are reported together, each as an *Error.
func Parse(file string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Config{}, nil
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}

	p := parser{file: file}

	// A second document would be silently ignored: refuse it.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.fail(&extra, "(top level)", "want one document")
		return nil, errors.Join(p.errs...)
	}

	var c Config
	root := doc.Content[0]
	p.mapping(root, "", map[string]func(key string, v *yaml.Node){
		"buckets":      func(k string, v *yaml.Node) { c.Buckets = p.buckets(k, v) },
		"resolver":     func(k string, v *yaml.Node) { c.Resolver = p.hostPort(k, v) },
		"s3_endpoint":  func(k string, v *yaml.Node) { c.S3Endpoint = p.url(k, v) },
		"path_style":   func(k string, v *yaml.Node) { c.PathStyle = p.boolean(k, v) },
		"probe_prefix": func(k string, v *yaml.Node) { c.ProbePrefix = p.prefix(k, v) },
		"timeout":      func(k string, v *yaml.Node) { c.Timeout = p.duration(k, v) },
		"allow_imdsv1": func(k string, v *yaml.Node) { c.AllowIMDSv1 = p.boolean(k, v) },
		"interval":     func(k string, v *yaml.Node) { c.Interval = p.durationAtLeast(k, v, minInterval) },
		"max_concurrent": func(k string, v *yaml.Node) {
			c.MaxConcurrent = p.intRange(k, v, 1, maxConcurrent)
		},
		"topology_refresh": func(k string, v *yaml.Node) {
			c.TopologyRefresh = p.durationAtLeast(k, v, minTopologyRefresh)
		},
		"tls_allowed_issuers": func(k string, v *yaml.Node) { c.TLSIssuers = p.strings(k, v) },
	})
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return &c, nil
}

// parser walks the YAML tree and collects every problem with its line.
type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// mapping decodes a mapping node, handing each known key's value to its
// field function; unknown and repeated keys are errors.
func (p *parser) mapping(n *yaml.Node, at string, fields map[string]func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, orRoot(at), "want a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			name = describeNode(k)
		}
		key := name
		if at != "" {
			key = at + "." + name
		}

		field, ok := fields[k.Value]
		switch {
		case !ok:
			p.fail(k, key, "unknown key")
		case seen[k.Value]:
			p.fail(k, key, "repeated key")
		default:
			seen[k.Value] = true
			field(key, v)
		}
	}
}

func orRoot(at string) string {
	if at == "" {
		return "(top level)"
	}
	return at
}

func (p *parser) buckets(key string, n *yaml.Node) []Bucket {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, key, "want a list of buckets")
		return nil
	}
	var out []Bucket
	names := map[string]bool{}
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", key, i)
		var b Bucket

		// A bare string is a bucket in the instance's region.
		if item.Kind == yaml.ScalarNode {
			b.Name = p.bucketName(at, item)
		} else {
			named := false
			p.mapping(item, at, map[string]func(string, *yaml.Node){
				"name": func(k string, v *yaml.Node) {
					named = true
					b.Name = p.bucketName(k, v)
				},
				"region":      func(k string, v *yaml.Node) { b.Region = p.region(k, v) },
				"expect_path": func(k string, v *yaml.Node) { b.ExpectPath = p.pathKind(k, v) },
			})
			if !named && item.Kind == yaml.MappingNode {
				p.fail(item, at+".name", "missing")
			}
		}

		if b.Name != "" && names[b.Name] {
			p.fail(item, at, "bucket %q is listed twice", b.Name)
		}
		names[b.Name] = true
		out = append(out, b)
	}
	return out
}

func (p *parser) scalar(key string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, key, "want a single value")
		return "", false
	}
	return n.Value, true
}

func (p *parser) bucketName(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if !ok {
		return ""
	}
	if !bucketName.MatchString(v) || strings.Contains(v, "..") {
		p.fail(n, key, "%q is not a valid S3 bucket name", v)
		return ""
	}
	return v
}

func (p *parser) region(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if ok && !regionName.MatchString(v) {
		p.fail(n, key, "%q is not an AWS region name like us-east-1", v)
		return ""
	}
	return v
}

func (p *parser) hostPort(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if !ok {
		return ""
	}
	if err := CheckHostPort(v); err != nil {
		p.fail(n, key, "%v", err)
		return ""
	}
	return v
}

// CheckHostPort reports whether s is a host:port a DNS server can be
// reached at.
func CheckHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q is not host:port", s)
	}
	return nil
}

func (p *parser) url(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if ok && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		p.fail(n, key, "%q is not an http:// or https:// URL", v)
		return ""
	}
	return v
}

func (p *parser) boolean(key string, n *yaml.Node) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.fail(n, key, "%s is not true or false", describeNode(n))
	}
	return b
}

// describeNode renders a value for an error: a scalar quoted, anything
// else in YAML's flow style, as written.
func describeNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	flow := *n
	flow.Style = yaml.FlowStyle
	out, err := yaml.Marshal(&flow)
	if err != nil {
		return "a " + kindName(n.Kind)
	}
	return strings.TrimSpace(string(out))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func (p *parser) prefix(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if !ok {
		return ""
	}
	if v == "" || strings.HasPrefix(v, "/") || !strings.HasSuffix(v, "/") {
		p.fail(n, key, "%q must be a non-empty key prefix ending in / and not starting with it", v)
		return ""
	}
	return v
}

func (p *parser) duration(key string, n *yaml.Node) time.Duration {
	v, ok := p.scalar(key, n)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(n, key, "%q is not a positive duration like 10s", v)
		return 0
	}
	return d
}

func (p *parser) durationAtLeast(key string, n *yaml.Node, min time.Duration) time.Duration {
	d := p.duration(key, n)
	if d != 0 && d < min {
		p.fail(n, key, "%s is shorter than the minimum %s", d, min)
		return 0
	}
	return d
}

func (p *parser) intRange(key string, n *yaml.Node, lo, hi int) int {
	var v int
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil || v < lo || v > hi {
		p.fail(n, key, "%q is not a whole number from %d to %d", n.Value, lo, hi)
		return 0
	}
	return v
}

func (p *parser) pathKind(key string, n *yaml.Node) string {
	v, ok := p.scalar(key, n)
	if ok && !slices.Contains(PathKinds, v) {
		p.fail(n, key, "%q is not a path kind (%s)", v, strings.Join(PathKinds, ", "))
		return ""
	}
	return v
}

func (p *parser) strings(key string, n *yaml.Node) []string {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, key, "want a list of names")
		return nil
	}
	var out []string
	for i, item := range n.Content {
		v, ok := p.scalar(fmt.Sprintf("%s[%d]", key, i), item)
		if ok && strings.TrimSpace(v) == "" {
			p.fail(item, fmt.Sprintf("%s[%d]", key, i), "empty name")
			continue
		}
		if ok {
			out = append(out, v)
		}
	}
	return out
}
