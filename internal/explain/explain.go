// Package explain turns what the agent observed into findings: the cause of
// a failure or of a surprising path, in plain words, with the change that
// would mend it. A finding states only what the observations establish.
package explain

import (
	"fmt"
	"strings"

	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/report"
	"github.com/pathagent/pathagent/internal/route"
	"github.com/pathagent/pathagent/internal/topology"
)

// Finding codes. They are stable: programs and alert rules match on them.
const (
	CodeProbeFailed         = "probe_failed"
	CodeNotAssociated       = "gateway_endpoint_not_associated"
	CodeNATSameRegion       = "nat_gateway_same_region"
	CodeOverridingRoute     = "route_overrides_endpoint"
	CodeBlackhole           = "blackhole_route"
	CodeNoRoute             = "no_route"
	CodeOtherRegion         = "bucket_in_other_region"
	CodeProxy               = "proxy_in_use"
	CodePathUnknown         = "path_unknown"
	CodeEC2CallFailed       = "ec2_call_failed"
	CodeEndpointUnavailable = "endpoint_not_available"
)

// Bucket is what was observed for one bucket.
type Bucket struct {
	Result probes.BucketResult

	// Paths holds the path of each probe in Result.Probes, by index.
	Paths []route.Path

	// Path is the bucket's path: that of its first connected probe.
	Path route.Path
}

// Input is everything a diagnosis observed.
type Input struct {
	// Region is the instance's region.
	Region   string
	Topology *topology.Topology
	Buckets  []Bucket
}

// Findings explains what the input shows, instance-wide findings first, then
// each bucket's in order.
func Findings(in Input) []report.Finding {
	out := []report.Finding{}
	top := in.Topology
	if top == nil {
		top = &topology.Topology{}
	}

	for _, p := range top.Problems {
		out = append(out, ec2Problem(p))
	}
	for _, ep := range top.Endpoints {
		if ep.State != "" && !strings.EqualFold(ep.State, "available") {
			out = append(out, report.Finding{
				Code:     CodeEndpointUnavailable,
				Severity: report.Warning,
				Summary:  fmt.Sprintf("S3 %s endpoint %s is %s, not available: it carries no traffic", strings.ToLower(string(ep.Type)), ep.ID, ep.State),
				Fix:      "wait for the endpoint to become available, or recreate it if it is failed or rejected",
			})
		}
	}

	for _, b := range in.Buckets {
		out = append(out, bucketFindings(in.Region, top, b)...)
	}
	return out
}

func ec2Problem(p topology.Problem) report.Finding {
	f := report.Finding{
		Code:     CodeEC2CallFailed,
		Severity: report.Warning,
		Summary:  fmt.Sprintf("%s failed (%s): %s", p.Call, orText(p.Code, "no answer"), lost(p.Call)),
	}
	switch p.Code {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
		f.Fix = fmt.Sprintf("allow ec2:%s on \"*\" in the instance role's policy", p.Call)
	case "RequestLimitExceeded", "Throttling":
		f.Fix = "the account's EC2 API rate limit is exhausted; run fewer describe calls, or retry later"
	}
	return f
}

// lost says what a failed call leaves unknown.
func lost(call string) string {
	switch call {
	case "DescribeRouteTables":
		return "the subnet's route table is unknown, so no path can be judged"
	case "DescribeVpcEndpoints":
		return "the VPC's S3 endpoints are unknown"
	case "DescribeManagedPrefixLists", "GetManagedPrefixListEntries", "DescribePrefixLists":
		return "prefix list entries are unknown, so routes through them cannot be matched"
	}
	return "what it returns is unknown"
}

func bucketFindings(region string, top *topology.Topology, b Bucket) []report.Finding {
	var out []report.Finding
	name := b.Result.Bucket
	add := func(sev report.Severity, code, summary, fix string) {
		out = append(out, report.Finding{Code: code, Severity: sev, Bucket: name, Summary: summary, Fix: fix})
	}
	sameRegion := b.Result.Region == region
	failed := anyFailed(b.Result.Probes)
	p := b.Path

	if b.Result.Redirect != nil {
		add(report.Info, CodeOtherRegion,
			fmt.Sprintf("the bucket is in %s, not %s: a gateway or interface endpoint only carries S3 traffic within its own region, so this traffic takes the %s path",
				b.Result.Region, region, p.Kind),
			"")
	}

	rt := top.RouteTable
	gw := gatewayEndpoints(top, region)
	switch p.Kind {
	case route.NATGateway, route.InternetGateway:
		if !sameRegion || rt == nil {
			break
		}
		if ep, ok := unassociated(gw, rt.ID); ok {
			add(severity(failed), CodeNotAssociated,
				fmt.Sprintf("the VPC has S3 gateway endpoint %s, but route table %s is not associated with it, so S3 traffic leaves through %s",
					ep.ID, rt.ID, p.Target),
				fmt.Sprintf("aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --add-route-table-ids %s", ep.ID, rt.ID))
		} else if ep, ok := associated(gw, rt.ID); ok {
			add(severity(failed), CodeOverridingRoute,
				fmt.Sprintf("route table %s is associated with gateway endpoint %s, but the more specific route %s -> %s takes S3 traffic away from it",
					rt.ID, ep.ID, p.Destination, p.Target),
				fmt.Sprintf("remove or narrow the route %s in %s", p.Destination, rt.ID))
		}
		if p.Kind == route.NATGateway {
			fix := ""
			if top.Endpoints != nil && len(gw) == 0 {
				fix = fmt.Sprintf("create an S3 gateway endpoint (free of charge) and associate it with %s", rt.ID)
			}
			add(report.Warning, CodeNATSameRegion,
				fmt.Sprintf("same-region S3 traffic goes through NAT gateway %s, which bills every GB it processes", p.Target),
				fix)
		}
	case route.Blackhole:
		add(report.Critical, CodeBlackhole,
			fmt.Sprintf("the route %s in %s points at %s, which no longer exists: S3 traffic is dropped", p.Destination, p.RouteTableID, p.Target),
			fmt.Sprintf("replace or delete the route %s in %s", p.Destination, p.RouteTableID))
	case route.NoRoute:
		add(report.Critical, CodeNoRoute,
			fmt.Sprintf("route table %s has no route for the S3 address", p.RouteTableID),
			"add an S3 gateway endpoint for the region, or a default route through a NAT or internet gateway")
	case route.Proxy:
		add(report.Info, CodeProxy,
			fmt.Sprintf("S3 requests go through the proxy %s (from HTTPS_PROXY/HTTP_PROXY), so the VPC path is the proxy's, not this instance's", p.Target),
			"to send S3 traffic directly, add the S3 names to NO_PROXY, for example .amazonaws.com")
	case route.Unknown:
		add(report.Warning, CodePathUnknown,
			"the path could not be established: "+orText(p.Note, "no connection was made"), "")
	}

	for _, pr := range b.Result.Probes {
		if pr.Success || pr.Skipped {
			continue
		}
		add(report.Critical, CodeProbeFailed, probeSummary(pr), "")
	}
	return out
}

func probeSummary(r probes.Result) string {
	what := r.Error
	if r.Code != "" {
		what = fmt.Sprintf("%s (HTTP %d): %s", r.Code, r.HTTPStatus, r.Error)
	}
	return fmt.Sprintf("%s failed in %s: %s", r.Op, r.FailedIn, what)
}

func anyFailed(rs []probes.Result) bool {
	for _, r := range rs {
		if !r.Success && !r.Skipped {
			return true
		}
	}
	return false
}

func severity(failed bool) report.Severity {
	if failed {
		return report.Critical
	}
	return report.Warning
}

// gatewayEndpoints returns the VPC's available S3 gateway endpoints for the
// region.
func gatewayEndpoints(top *topology.Topology, region string) []topology.Endpoint {
	var out []topology.Endpoint
	for _, ep := range top.Endpoints {
		if ep.Type == topology.Gateway && ep.ServiceName == "com.amazonaws."+region+".s3" &&
			strings.EqualFold(ep.State, "available") {
			out = append(out, ep)
		}
	}
	return out
}

func unassociated(eps []topology.Endpoint, rtb string) (topology.Endpoint, bool) {
	if _, ok := associated(eps, rtb); ok || len(eps) == 0 {
		return topology.Endpoint{}, false
	}
	return eps[0], true
}

func associated(eps []topology.Endpoint, rtb string) (topology.Endpoint, bool) {
	for _, ep := range eps {
		for _, id := range ep.RouteTableIDs {
			if id == rtb {
				return ep, true
			}
		}
	}
	return topology.Endpoint{}, false
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
