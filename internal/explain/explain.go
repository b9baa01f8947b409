// Package explain turns what the agent observed into findings: the cause of
// a failure or of a surprising path, in plain words, with the change that
// would mend it. A finding states only what the observations establish.
package explain

import (
	"fmt"
	"net/netip"
	"slices"
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
	CodeDNSFailed           = "dns_failed"
	CodeDNSUnexpected       = "dns_unexpected_address"
	CodePrivateDNSOff       = "interface_endpoint_private_dns_off"
	CodeLongLivedKeys       = "long_lived_credentials"
	CodeNoCredentials       = "no_credentials"
	CodeCredentialsRejected = "credentials_rejected"
	CodeClockSkew           = "clock_skew"
	CodeTimeoutOnOpenRoute  = "connect_timeout_on_open_route"
	CodeAccessDenied        = "access_denied"
	CodeTLSIntercepted      = "tls_intercepted"
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

	// VPCCIDRs are the VPC's address ranges, from IMDS.
	VPCCIDRs []netip.Prefix

	// Credentials says where the SDK found the credentials the probes
	// signed with.
	Credentials Credentials

	// NoProxy is the NO_PROXY setting in force, for explaining why a
	// proxy was used.
	NoProxy string

	// VPCID, PrivateIP and PublicIPs describe the instance, for the
	// condition keys its requests carry.
	VPCID     string
	PrivateIP string
	PublicIPs []string

	// PlainHTTP is true when S3 is reached without TLS (the lab), which
	// sets aws:SecureTransport to false.
	PlainHTTP bool

	// TLSIssuers are the organizations S3's certificates may come from.
	TLSIssuers []string
}

// Credentials describes the probes' credentials without revealing them.
type Credentials struct {
	// Source is the SDK provider that supplied them, for example
	// EC2RoleProvider or EnvConfigCredentials; empty when none could be
	// had.
	Source string

	// LongLived is true for access keys that do not expire (AKIA...),
	// false for temporary ones (ASIA...) such as the instance role's.
	LongLived bool

	// Err is why no credentials could be had, or nil.
	Err error
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

	out = append(out, credentialFindings(in.Credentials)...)
	for _, b := range in.Buckets {
		out = append(out, bucketFindings(in, top, b)...)
	}
	return out
}

func credentialFindings(c Credentials) []report.Finding {
	switch {
	case c.Err != nil:
		return []report.Finding{{
			Code:     CodeNoCredentials,
			Severity: report.Critical,
			Summary:  "no AWS credentials could be had: " + c.Err.Error(),
			Fix:      "attach an instance profile with a role to the instance (aws ec2 associate-iam-instance-profile), or check that IMDS is reachable for its credentials",
		}}
	case c.LongLived:
		return []report.Finding{{
			Code:     CodeLongLivedKeys,
			Severity: report.Warning,
			Summary:  fmt.Sprintf("the probes signed with long-lived access keys (from %s); keys stored on an instance outlive it and leak with its disks and images", c.Source),
			Fix:      "remove the keys from the instance and attach an instance profile whose role has the same permissions; the SDK then uses short-lived credentials from IMDS",
		}}
	}
	return nil
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
	case "AuthFailure":
		f.Fix = "the EC2 API refused the credentials: check that the agent's keys are current (credentials_rejected says the same of S3)"
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

func bucketFindings(in Input, top *topology.Topology, b Bucket) []report.Finding {
	region := in.Region
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
		// Only traffic to S3's own addresses could use an endpoint;
		// a rewritten answer is dns_unexpected_address's business.
		if !sameRegion || rt == nil || !maybeS3(top, b) {
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
			if top.Endpoints != nil && !hasGateway(top, region) {
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
		noProxy := "NO_PROXY is not set"
		if in.NoProxy != "" {
			noProxy = fmt.Sprintf("NO_PROXY (%s) does not cover %s", in.NoProxy, firstHost(b))
		}
		add(report.Warning, CodeProxy,
			fmt.Sprintf("S3 requests go through the proxy %s (from HTTPS_PROXY/HTTP_PROXY; %s), so the VPC path is the proxy's, not this instance's, and an endpoint or aws:SourceIp condition sees the proxy",
				p.Target, noProxy),
			"to send S3 traffic directly, add .amazonaws.com to NO_PROXY")
	case route.Unknown:
		// A name that did not resolve has no path; dns_failed says so.
		if !failedIn(b, probes.PhaseResolve) {
			add(report.Warning, CodePathUnknown,
				"the path could not be established: "+orText(p.Note, "no connection was made"), "")
		}
	}

	out = append(out, dnsFindings(in, top, b)...)
	out = append(out, tlsFindings(in, b)...)
	out = append(out, privateDNSFindings(top, b)...)
	pf := policyFindings(in, top, b)
	out = append(out, pf...)
	out = append(out, reasonFindings(top, b, explained(pf))...)

	for _, pr := range b.Result.Probes {
		if pr.Success || pr.Skipped {
			continue
		}
		add(report.Critical, CodeProbeFailed, probeSummary(pr), "")
	}
	return out
}

// maybeS3 reports whether the bucket's traffic went to one of S3's
// published addresses for the region, or might have: true when the S3
// prefix list is unknown.
func maybeS3(top *topology.Topology, b Bucket) bool {
	s3, known := top.PrefixLists[top.S3PrefixListID]
	if !known {
		return true
	}
	for _, pr := range b.Result.Probes {
		if pr.Remote.IsValid() {
			return inAny(pr.Remote.Addr().Unmap(), s3.CIDRs)
		}
	}
	return true
}

func failedIn(b Bucket, phase probes.Phase) bool {
	for _, pr := range b.Result.Probes {
		if pr.FailedIn == phase {
			return true
		}
	}
	return false
}

func firstHost(b Bucket) string {
	for _, pr := range b.Result.Probes {
		if pr.Host != "" {
			return pr.Host
		}
	}
	return "the S3 name"
}

// dnsFindings explains a name that did not resolve, or that resolved to an
// address that is neither S3's nor the VPC's.
func dnsFindings(in Input, top *topology.Topology, b Bucket) []report.Finding {
	for _, pr := range b.Result.Probes {
		if pr.FailedIn == probes.PhaseResolve {
			return []report.Finding{{
				Code:     CodeDNSFailed,
				Severity: report.Critical,
				Bucket:   b.Result.Bucket,
				Summary:  fmt.Sprintf("%s did not resolve: %s", orText(pr.Host, "the S3 name"), pr.Error),
				Fix:      "check the VPC's DNS support (enableDnsSupport), Route 53 Resolver rules and private hosted zones that cover amazonaws.com",
			}}
		}
	}

	// Only the instance's own region has its S3 list at hand.
	s3, known := top.PrefixLists[top.S3PrefixListID]
	if !known || b.Result.Region != in.Region || b.Path.Kind == route.Proxy {
		return nil
	}
	for _, pr := range b.Result.Probes {
		if !pr.Remote.IsValid() || pr.Proxy != "" {
			continue
		}
		addr := pr.Remote.Addr().Unmap()
		if inAny(addr, s3.CIDRs) || inAny(addr, in.VPCCIDRs) {
			return nil
		}
		return []report.Finding{{
			Code:     CodeDNSUnexpected,
			Severity: report.Warning,
			Bucket:   b.Result.Bucket,
			Summary: fmt.Sprintf("%s resolved to %s, which is neither in S3's published ranges for %s (%s) nor inside the VPC: a hosts file entry, a private hosted zone or a resolver that rewrites answers sends S3 traffic elsewhere",
				orText(pr.Host, "the S3 name"), addr, in.Region, s3.ID),
			Fix: "look for the name in /etc/hosts, in Route 53 private hosted zones associated with the VPC, and in Resolver forwarding rules",
		}}
	}
	return nil
}

// tlsFindings reports a certificate for S3 that none of S3's issuers
// signed: the trust store accepted it (the handshake succeeded), so a
// middlebox with its own authority on this instance decrypts the traffic.
func tlsFindings(in Input, b Bucket) []report.Finding {
	if len(in.TLSIssuers) == 0 {
		return nil
	}
	for _, pr := range b.Result.Probes {
		if len(pr.Issuers) == 0 {
			continue
		}
		for _, org := range pr.Issuers {
			if slices.Contains(in.TLSIssuers, org) {
				return nil
			}
		}
		return []report.Finding{{
			Code:     CodeTLSIntercepted,
			Severity: report.Warning,
			Bucket:   b.Result.Bucket,
			Summary: fmt.Sprintf("the certificate presented for %s was issued by %s, not by an issuer S3 uses (%s); this instance trusts it, so something between the instance and S3 decrypts the traffic",
				firstHost(b), strings.Join(pr.Issuers, " / "), strings.Join(in.TLSIssuers, ", ")),
			Fix: "find the TLS-inspecting proxy or firewall and exempt S3 from inspection; if the issuer is yours on purpose, add it to tls_allowed_issuers",
		}}
	}
	return nil
}

// privateDNSFindings explains why an S3 interface endpoint is not used.
func privateDNSFindings(top *topology.Topology, b Bucket) []report.Finding {
	if b.Path.Kind == route.InterfaceEndpoint || b.Path.Kind == route.GatewayEndpoint {
		return nil
	}
	for _, ep := range top.Endpoints {
		if ep.Type != topology.Interface || ep.PrivateDNS || !strings.EqualFold(ep.State, "available") {
			continue
		}
		return []report.Finding{{
			Code:     CodePrivateDNSOff,
			Severity: report.Warning,
			Bucket:   b.Result.Bucket,
			Summary: fmt.Sprintf("S3 interface endpoint %s exists, but its private DNS is off, so %s resolves to S3's public addresses and the traffic goes through %s instead",
				ep.ID, firstHost(b), b.Path.Kind),
			Fix: fmt.Sprintf("enable private DNS on %s (aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --private-dns-enabled), or address S3 by the endpoint's own name", ep.ID, ep.ID),
		}}
	}
	return nil
}

// explained reports whether the policy findings name a denial's cause.
func explained(fs []report.Finding) bool {
	for _, f := range fs {
		switch f.Code {
		case CodeBucketPolicyNeedsEndpoint, CodeBucketPolicyDenies, CodeEndpointPolicyDenies:
			return true
		}
	}
	return false
}

// reasonFindings explains the failure reasons that have one cause. A denial
// a policy finding already explains is not repeated.
func reasonFindings(top *topology.Topology, b Bucket, denialExplained bool) []report.Finding {
	seen := map[probes.Reason]bool{}
	var out []report.Finding
	add := func(sev report.Severity, code, summary, fix string) {
		out = append(out, report.Finding{Code: code, Severity: sev, Bucket: b.Result.Bucket, Summary: summary, Fix: fix})
	}
	for _, pr := range b.Result.Probes {
		reason := pr.Reason()
		if reason == "" || seen[reason] {
			continue
		}
		seen[reason] = true

		switch reason {
		case probes.ReasonCredentials:
			add(report.Critical, CodeCredentialsRejected,
				fmt.Sprintf("S3 refused the credentials (%s): the key is unknown, revoked or expired, or the signature does not match", pr.Code),
				"check which credentials the agent uses (environment, shared files, instance role) and that they are current")
		case probes.ReasonClockSkew:
			add(report.Critical, CodeClockSkew,
				"S3 refused the request because the instance's clock is off by more than 15 minutes (RequestTimeTooSkewed)",
				"synchronise the clock, for example with chrony and the Amazon Time Sync Service at 169.254.169.123")
		case probes.ReasonConnectTimeout:
			if !openRoute(b.Path.Kind) {
				continue
			}
			add(report.Critical, CodeTimeoutOnOpenRoute,
				fmt.Sprintf("the connection to %s timed out although route table %s sends it to %s: something drops the packets on the way, most likely a network ACL or a security group",
					pr.Remote, b.Path.RouteTableID, b.Path.Target),
				nACLFix(top))
		case probes.ReasonAccessDenied:
			if denialExplained {
				continue
			}
			add(report.Critical, CodeAccessDenied,
				fmt.Sprintf("S3 denied %s (AccessDenied) on the %s path: the bucket policy, the VPC endpoint policy (if the path uses one) or the instance role's IAM policy refuses it%s",
					pr.Op, b.Path.Kind, s3Says(pr.Error)),
				"")
		}
	}
	return out
}

// s3Says quotes what S3's AccessDenied message tells of the policy type
// that denied, when it tells (same account or organization only).
func s3Says(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "no vpc endpoint policy allows"), strings.Contains(m, "explicit deny in a vpc endpoint policy"):
		return "; S3's message names the VPC endpoint policy"
	case strings.Contains(m, "resource-based policy"):
		return "; S3's message names a resource-based policy: the bucket policy"
	case strings.Contains(m, "identity-based policy"):
		return "; S3's message names an identity-based policy: the role's IAM policy"
	}
	return ""
}

// openRoute reports whether a path kind forwards traffic, so that a timeout
// on it is not the route's doing.
func openRoute(k route.Kind) bool {
	switch k {
	case route.GatewayEndpoint, route.InterfaceEndpoint, route.InternetGateway,
		route.NATGateway, route.TransitGateway, route.Peering, route.EgressOnly:
		return true
	}
	return false
}

// nACLFix says what to allow, with the S3 ranges when they are known:
// network ACLs cannot name prefix lists, so they need the CIDRs.
func nACLFix(top *topology.Topology) string {
	fix := "check the subnet's network ACL (both directions: outbound 443, inbound ephemeral ports 1024-65535) and the instance's security groups (outbound 443 to the S3 prefix list)"
	if s3, ok := top.PrefixLists[top.S3PrefixListID]; ok && len(s3.CIDRs) > 0 {
		cidrs := make([]string, 0, len(s3.CIDRs))
		for _, c := range s3.CIDRs {
			cidrs = append(cidrs, c.String())
		}
		fix += fmt.Sprintf("; network ACLs cannot reference prefix lists, so allow %s's CIDRs: %s", s3.ID, strings.Join(cidrs, ", "))
	}
	return fix
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
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

// hasGateway reports whether the VPC has an S3 gateway endpoint for the
// region in any state.
func hasGateway(top *topology.Topology, region string) bool {
	for _, ep := range top.Endpoints {
		if ep.Type == topology.Gateway && ep.ServiceName == "com.amazonaws."+region+".s3" {
			return true
		}
	}
	return false
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
