// Package agent runs one diagnosis: identity, network, resolution, probes,
// path attribution and findings, in that order, into a report.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/net/http/httpproxy"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/explain"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/report"
	"github.com/pathagent/pathagent/internal/resolve"
	"github.com/pathagent/pathagent/internal/route"
	"github.com/pathagent/pathagent/internal/topology"
)

// Agent holds what a diagnosis needs. Config, IMDS, AWS and Resolver are
// required.
type Agent struct {
	Config *config.Config

	// IMDS reads the instance's identity.
	IMDS *awsimds.Client

	// AWS is the SDK configuration for EC2 and S3: credentials from the
	// default chain, endpoint overrides from the environment. Its region
	// is replaced by the instance's.
	AWS aws.Config

	// EC2 reads the network; nil means a client made from AWS in the
	// instance's region, with EC2APIOptions added to its stack.
	EC2           topology.EC2API
	EC2APIOptions []func(*middleware.Stack) error

	// Resolver is the DNS server (host:port) S3 names are resolved with.
	Resolver string

	Log *slog.Logger
}

// Network is what the agent knows of the subnet: the topology from the EC2
// API and the addresses of the VPC's S3 interface endpoints.
type Network struct {
	Topology *topology.Topology

	// EndpointAddrs maps each interface endpoint address to its id.
	EndpointAddrs map[netip.Addr]string

	// addrsByID lists each interface endpoint's addresses, in the order
	// they resolved, for the report.
	addrsByID map[string][]string
}

// Check runs one whole diagnosis. It always returns a report; when the
// agent cannot do its job the report's status is report.Error and says why.
func (a *Agent) Check(ctx context.Context) *report.Report {
	id, err := imds.Load(ctx, a.IMDS)
	if err != nil {
		return IdentityFailure(err)
	}
	n := a.ReadNetwork(ctx, id)
	return a.Assemble(id, n, a.Probe(ctx, id, a.Config.Buckets))
}

// IdentityFailure is the report of an agent that could not learn which
// instance it runs on.
func IdentityFailure(err error) *report.Report {
	rep := newReport()
	rep.Status = report.Error
	rep.Error = err.Error()
	rep.Findings = append(rep.Findings, imdsFinding(err))
	return rep
}

func newReport() *report.Report {
	return &report.Report{
		Schema:   report.Schema,
		Time:     time.Now().UTC(),
		Buckets:  []report.Bucket{},
		Findings: []report.Finding{},
	}
}

// ReadNetwork reads the subnet's route table, S3 endpoints and prefix lists
// from the EC2 API, and resolves the interface endpoints' names.
func (a *Agent) ReadNetwork(ctx context.Context, id imds.Identity) *Network {
	api := a.EC2
	if api == nil {
		cfg := a.AWS.Copy()
		cfg.Region = id.Region
		api = ec2.NewFromConfig(cfg, func(o *ec2.Options) {
			o.APIOptions = append(o.APIOptions, a.EC2APIOptions...)
		})
	}
	n := &Network{
		Topology:      topology.Fetch(ctx, api, id.VPCID, id.SubnetID, id.Region),
		EndpointAddrs: map[netip.Addr]string{},
		addrsByID:     map[string][]string{},
	}

	res := &resolve.Resolver{Server: a.Resolver}
	for _, ep := range n.Topology.Endpoints {
		if ep.Type != topology.Interface {
			continue
		}
		for _, name := range ep.DNSNames {
			// The regional entry is a wildcard; the name under it
			// resolves to the same interfaces.
			r, err := res.Lookup(ctx, strings.TrimPrefix(name, "*."))
			if err != nil {
				a.log().Debug("resolve interface endpoint name",
					"endpoint", ep.ID, "name", name, "err", err)
				continue
			}
			for _, ans := range r.Addrs {
				if _, seen := n.EndpointAddrs[ans.Addr]; !seen {
					n.addrsByID[ep.ID] = append(n.addrsByID[ep.ID], ans.Addr.String())
				}
				n.EndpointAddrs[ans.Addr] = ep.ID
			}
		}
	}
	return n
}

// Observed is what one round of probes saw.
type Observed struct {
	// Results holds each bucket's probes, in the buckets' order.
	Results []probes.BucketResult

	// Credentials says where the probes' credentials came from.
	Credentials explain.Credentials

	// NoProxy is the NO_PROXY setting the probes ran with.
	NoProxy string
}

// Probe probes the buckets, at most Config.MaxConcurrent at once.
func (a *Agent) Probe(ctx context.Context, id imds.Identity, buckets []config.Bucket) *Observed {
	obs := &Observed{
		Credentials: a.credentials(ctx),
		NoProxy:     httpproxy.FromEnvironment().NoProxy,
	}

	prefix := a.Config.ProbePrefix
	if prefix == "" {
		prefix = probes.DefaultPrefix
	}
	prober := &probes.Prober{
		Config:    a.AWS,
		Resolver:  &resolve.Resolver{Server: a.Resolver},
		Region:    id.Region,
		Endpoint:  a.Config.S3Endpoint,
		PathStyle: a.Config.PathStyle,
		Prefix:    prefix + id.InstanceID + "/",
		Timeout:   a.Config.Timeout,
	}

	limit := a.Config.MaxConcurrent
	if limit <= 0 {
		limit = config.DefaultMaxConcurrent
	}
	sem := make(chan struct{}, limit)
	out := make([]probes.BucketResult, len(buckets))
	var wg sync.WaitGroup
	for i, b := range buckets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = prober.Run(ctx, probes.Bucket{Name: b.Name, Region: b.Region})
		}()
	}
	wg.Wait()
	obs.Results = out
	return obs
}

// credentials asks the SDK for the credentials the probes will sign with
// (it caches them, so the probes' own requests reuse them) and says where
// they came from, without keeping them.
func (a *Agent) credentials(ctx context.Context) explain.Credentials {
	if a.AWS.Credentials == nil {
		return explain.Credentials{Err: errors.New("no credential provider is configured")}
	}
	c, err := a.AWS.Credentials.Retrieve(ctx)
	if err != nil {
		return explain.Credentials{Err: err}
	}
	source, _, _ := strings.Cut(c.Source, ":")
	return explain.Credentials{
		Source: source,
		// Long-term IAM user keys start AKIA; temporary ones ASIA.
		LongLived: strings.HasPrefix(c.AccessKeyID, "AKIA") && c.SessionToken == "",
	}
}

// Assemble attributes each probe to its path, explains what the results
// show and builds the report. It does no I/O.
func (a *Agent) Assemble(id imds.Identity, n *Network, obs *Observed) *report.Report {
	rep := newReport()
	rep.Resolver = a.Resolver
	rep.Identity = identityReport(id)
	rep.Network = networkReport(n.Topology, n.addrsByID)

	expect := map[string]string{}
	for _, b := range a.Config.Buckets {
		expect[b.Name] = b.ExpectPath
	}

	in := explain.Input{
		Region:      id.Region,
		Topology:    n.Topology,
		VPCCIDRs:    id.VPCCIDRs,
		Credentials: obs.Credentials,
		NoProxy:     obs.NoProxy,
		VPCID:       id.VPCID,
		PublicIPs:   strs(id.PublicIPs),
		PlainHTTP:   strings.HasPrefix(a.Config.S3Endpoint, "http://"),
		TLSIssuers:  a.Config.TLSIssuers,
	}
	if in.TLSIssuers == nil {
		in.TLSIssuers = config.DefaultTLSIssuers
	}
	if len(id.PrivateIPs) > 0 {
		in.PrivateIP = id.PrivateIPs[0].String()
	}
	if rep.Identity != nil {
		rep.Identity.Credentials = obs.Credentials.Source
	}
	failed := false
	for _, br := range obs.Results {
		eb := attribute(n.Topology, n.EndpointAddrs, br)
		in.Buckets = append(in.Buckets, eb)

		rb := bucketReport(eb, id.Region)
		rb.ExpectPath = expect[br.Bucket]
		rep.Buckets = append(rep.Buckets, rb)

		ok := !anyFailed(br.Probes)
		failed = failed || !ok
		a.log().Debug("probed bucket",
			"bucket", br.Bucket,
			"region", br.Region,
			"path", string(eb.Path.Kind),
			"target", eb.Path.Target,
			"ok", ok)
	}
	rep.Findings = explain.Findings(in)

	rep.Status = report.OK
	if failed {
		rep.Status = report.Failed
	}
	return rep
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// attribute gives each probe of a bucket the path its connection took.
func attribute(top *topology.Topology, endpointAddrs map[netip.Addr]string, br probes.BucketResult) explain.Bucket {
	eb := explain.Bucket{Result: br}
	found := false
	for _, r := range br.Probes {
		p := pathOf(top, endpointAddrs, r)
		eb.Paths = append(eb.Paths, p)
		if !found && r.Remote.IsValid() {
			eb.Path, found = p, true
		}
	}
	if !found {
		eb.Path = route.Path{Kind: route.Unknown, Note: "no probe got as far as choosing an address"}
	}
	return eb
}

func pathOf(top *topology.Topology, endpointAddrs map[netip.Addr]string, r probes.Result) route.Path {
	switch {
	case r.Skipped:
		return route.Path{Kind: route.Unknown, Note: "not sent"}
	case r.Proxy != "":
		return route.Path{Kind: route.Proxy, Target: r.Proxy}
	case !r.Remote.IsValid():
		return route.Path{Kind: route.Unknown, Note: "no connection was attempted"}
	}
	return route.Attribute(top, endpointAddrs, r.Remote.Addr())
}

func anyFailed(rs []probes.Result) bool {
	for _, r := range rs {
		if !r.Success && !r.Skipped {
			return true
		}
	}
	return false
}

func imdsFinding(err error) report.Finding {
	f := report.Finding{
		Code:     "imds_unavailable",
		Severity: report.Critical,
		Summary:  "the instance metadata service could not be read: " + err.Error(),
	}
	switch {
	case errors.Is(err, imds.ErrNoToken):
		f.Code = "imds_no_token"
		f.Fix = "in a container, raise the hop limit: aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2; or run with --allow-imdsv1"
	case errors.Is(err, imds.ErrUnreachable):
		f.Fix = "run pathagent on an EC2 instance, or point AWS_EC2_METADATA_SERVICE_ENDPOINT at a metadata service"
	}
	return f
}

func identityReport(id imds.Identity) *report.Identity {
	v := 1
	if id.TokenUsed {
		v = 2
	}
	return &report.Identity{
		InstanceID:       id.InstanceID,
		Region:           id.Region,
		AvailabilityZone: id.AvailabilityZone,
		AccountID:        id.AccountID,
		MAC:              id.MAC,
		VPCID:            id.VPCID,
		VPCCIDRs:         strs(id.VPCCIDRs),
		SubnetID:         id.SubnetID,
		SubnetCIDR:       optional(id.SubnetCIDR),
		PrivateIPs:       strs(id.PrivateIPs),
		PublicIPs:        strs(id.PublicIPs),
		IMDSVersion:      v,
	}
}

func networkReport(top *topology.Topology, addrs map[string][]string) *report.Network {
	n := &report.Network{
		Endpoints:   []report.Endpoint{},
		PrefixLists: []report.PrefixList{},
		Problems:    []report.Problem{},
	}
	if rt := top.RouteTable; rt != nil {
		n.RouteTable = &report.RouteTable{ID: rt.ID, Implicit: rt.Implicit, Routes: []report.Route{}}
		for _, r := range rt.Routes {
			state := "active"
			if r.Blackhole {
				state = "blackhole"
			}
			dst := r.PrefixListID
			if dst == "" {
				dst = r.Destination.String()
			}
			n.RouteTable.Routes = append(n.RouteTable.Routes, report.Route{Destination: dst, Target: r.Target, State: state})
		}
	}
	for _, ep := range top.Endpoints {
		n.Endpoints = append(n.Endpoints, report.Endpoint{
			ID:          ep.ID,
			Type:        string(ep.Type),
			State:       ep.State,
			RouteTables: ep.RouteTableIDs,
			PrivateDNS:  ep.PrivateDNS,
			Addresses:   addrs[ep.ID],
			HasPolicy:   ep.PolicyDocument != "",
		})
	}
	for _, pl := range top.PrefixLists {
		n.PrefixLists = append(n.PrefixLists, report.PrefixList{ID: pl.ID, Name: pl.Name, CIDRs: strs(pl.CIDRs)})
	}
	for _, p := range top.Problems {
		n.Problems = append(n.Problems, report.Problem{Call: p.Call, Code: p.Code, Message: p.Message})
	}
	return n
}

func bucketReport(eb explain.Bucket, region string) report.Bucket {
	br := eb.Result
	out := report.Bucket{
		Name:   br.Bucket,
		Region: br.Region,
		Path:   pathReport(eb.Path),
		Probes: []report.Probe{},
		Swept:  br.Swept,
	}
	if br.Redirect != nil {
		out.RedirectedFrom = region
	}
	for i, r := range br.Probes {
		if out.DNS == nil && (r.Resolution != nil || r.FailedIn == probes.PhaseResolve) {
			out.DNS = dnsReport(r)
		}
		out.Probes = append(out.Probes, probeReport(r, eb.Paths[i]))
	}
	return out
}

func pathReport(p route.Path) report.Path {
	return report.Path{
		Kind:         string(p.Kind),
		Target:       p.Target,
		RouteTableID: p.RouteTableID,
		Route:        p.Destination,
		Matched:      optional(p.Matched),
		Note:         p.Note,
	}
}

func probeReport(r probes.Result, p route.Path) report.Probe {
	out := report.Probe{
		Op:         string(r.Op),
		Success:    r.Success,
		Skipped:    r.Skipped,
		Key:        r.Key,
		FailedIn:   string(r.FailedIn),
		ErrorCode:  r.Code,
		HTTPStatus: r.HTTPStatus,
		Error:      r.Error,
		RequestID:  r.RequestID,
		Proxy:      r.Proxy,
		Path:       pathReport(p),
		Reason:     string(r.Reason()),
		LatencyS:   r.Timings.Total.Seconds(),
	}
	if r.Remote.IsValid() {
		out.Remote = r.Remote.String()
	}
	if !r.Skipped {
		out.Phases = &report.Phases{
			Resolve:   r.Timings.Resolve.Seconds(),
			Connect:   r.Timings.Connect.Seconds(),
			TLS:       r.Timings.TLS.Seconds(),
			FirstByte: r.Timings.FirstByte.Seconds(),
		}
	}
	return out
}

func dnsReport(r probes.Result) *report.DNS {
	d := &report.DNS{Name: r.Host, Answers: []report.DNSAnswer{}}
	if res := r.Resolution; res != nil {
		d.Server = res.Server
		d.CNAMEs = res.CNAMEs
		d.LatencyS = res.Latency.Seconds()
		d.Transport = res.A.Transport
		for _, a := range res.Addrs {
			d.Answers = append(d.Answers, report.DNSAnswer{Address: a.Addr.String(), TTL: a.TTL})
		}
	}
	if r.FailedIn == probes.PhaseResolve {
		d.Error = r.Error
	}
	return d
}

func strs[T fmt.Stringer](v []T) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		out = append(out, x.String())
	}
	return out
}

// optional renders a prefix, or "" for the zero prefix.
func optional(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
