package explain

import (
	"fmt"
	"strings"

	"github.com/pathagent/pathagent/internal/policy"
	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/report"
	"github.com/pathagent/pathagent/internal/route"
	"github.com/pathagent/pathagent/internal/topology"
)

// Policy finding codes.
const (
	CodeBucketPolicyNeedsEndpoint = "bucket_policy_requires_endpoint"
	CodeBucketPolicyDenies        = "bucket_policy_denies"
	CodeEndpointPolicyDenies      = "endpoint_policy_denies"
	CodePolicyUndetermined        = "policy_undetermined"
	CodeBucketPolicyUnreadable    = "bucket_policy_unreadable"
)

// endpointKeys are the condition keys only a request through a VPC endpoint
// carries: a policy that tests them demands the endpoint.
var endpointKeys = []string{"aws:sourcevpce", "aws:sourcevpc", "aws:vpcsourceip"}

// policyFindings evaluates the bucket policy and, on an endpoint path, the
// endpoint policy against each denied probe, with the condition keys the
// path gives the request. It reports only what the evaluation establishes:
// a denial it cannot decide is said to be undetermined, with why.
func policyFindings(in Input, top *topology.Topology, b Bucket) []report.Finding {
	var out []report.Finding
	seen := map[string]bool{}
	add := func(sev report.Severity, code, summary, fix string) {
		if seen[code] {
			return
		}
		seen[code] = true
		out = append(out, report.Finding{Code: code, Severity: sev, Bucket: b.Result.Bucket, Summary: summary, Fix: fix})
	}

	br := b.Result
	var denied []probes.Result
	for _, pr := range br.Probes {
		if pr.Reason() == probes.ReasonAccessDenied {
			denied = append(denied, pr)
		}
	}
	if len(denied) == 0 {
		return nil
	}

	bucketPolicy, err := parseIf(br.PolicyRead, br.Policy)
	switch {
	case br.PolicyError != "":
		add(report.Info, CodeBucketPolicyUnreadable,
			fmt.Sprintf("the bucket policy could not be read (%s), so whether it causes the denial is not checked", br.PolicyError),
			"allow s3:GetBucketPolicy on the bucket to the instance role, so pathagent can check it")
	case err != nil:
		add(report.Info, CodePolicyUndetermined, "the bucket policy could not be parsed: "+err.Error(), "")
	}

	ep := endpointOf(top, b.Path)
	var endpointPolicy *policy.Policy
	if ep != nil && ep.PolicyDocument != "" {
		if endpointPolicy, err = policy.Parse([]byte(ep.PolicyDocument)); err != nil {
			add(report.Info, CodePolicyUndetermined,
				fmt.Sprintf("the policy of endpoint %s could not be parsed: %v", ep.ID, err), "")
		}
	}

	for _, pr := range denied {
		req := request(in, b, pr)

		if endpointPolicy != nil {
			res := policy.Evaluate(endpointPolicy, req)
			switch res.Decision {
			case policy.ExplicitDeny, policy.ImplicitDeny:
				add(report.Critical, CodeEndpointPolicyDenies,
					fmt.Sprintf("the policy of VPC endpoint %s, which this traffic goes through, refuses %s on %s: %s",
						ep.ID, req.Action, req.Resource, res.Explain()),
					fmt.Sprintf("allow %s on arn:aws:s3:::%s and arn:aws:s3:::%s/* in the endpoint policy of %s (aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --policy-document file://policy.json)",
						req.Action, br.Bucket, br.Bucket, ep.ID, ep.ID))
			case policy.Unknown:
				if res.Denied() {
					add(report.Info, CodePolicyUndetermined,
						fmt.Sprintf("the policy of endpoint %s may refuse %s: %s", ep.ID, req.Action, res.Explain()), "")
				}
			}
		}

		if bucketPolicy == nil {
			continue
		}
		res := policy.Evaluate(bucketPolicy, req)
		switch {
		case res.Decision == policy.ExplicitDeny && demandsEndpoint(res) && ep == nil:
			add(report.Critical, CodeBucketPolicyNeedsEndpoint,
				fmt.Sprintf("the bucket policy only admits requests through a VPC endpoint, and this instance's traffic takes %s instead: %s",
					describe(b.Path), res.Explain()),
				endpointFix(in, top, b))
		case res.Decision == policy.ExplicitDeny:
			add(report.Critical, CodeBucketPolicyDenies,
				fmt.Sprintf("the bucket policy refuses %s on %s: %s", req.Action, req.Resource, res.Explain()),
				"change the denying statement, or send the request the way its conditions demand")
		case res.Decision == policy.Unknown && res.Denied():
			add(report.Info, CodePolicyUndetermined,
				"the bucket policy may refuse the request, but not every condition could be judged: "+res.Explain(), "")
		}
	}
	return out
}

func parseIf(read bool, doc string) (*policy.Policy, error) {
	if !read || doc == "" {
		return nil, nil
	}
	return policy.Parse([]byte(doc))
}

// request is the probe's request as a policy sees it: its action and
// resource, an unknown principal (the agent does not ask STS who it is),
// and the condition keys its path implies.
func request(in Input, b Bucket, pr probes.Result) policy.Request {
	bucket := b.Result.Bucket
	req := policy.Request{Resource: "arn:aws:s3:::" + bucket + "/" + pr.Key}
	switch pr.Op {
	case probes.List:
		req.Action, req.Resource = "s3:ListBucket", "arn:aws:s3:::"+bucket
	case probes.Put:
		req.Action = "s3:PutObject"
	case probes.Get:
		req.Action = "s3:GetObject"
	case probes.Delete:
		req.Action = "s3:DeleteObject"
	}

	c := &req.Context
	c.Set("aws:SecureTransport", fmt.Sprint(!in.PlainHTTP))
	switch b.Path.Kind {
	case route.GatewayEndpoint, route.InterfaceEndpoint:
		// Through an endpoint the request carries the endpoint's keys
		// and no aws:SourceIp.
		c.Set("aws:SourceVpce", b.Path.Target)
		c.Set("aws:SourceVpc", in.VPCID)
		if in.PrivateIP != "" {
			c.Set("aws:VpcSourceIp", in.PrivateIP)
		} else {
			c.SetUnknown("aws:VpcSourceIp")
		}
	case route.InternetGateway:
		// The instance's public address, when it has exactly one.
		if len(in.PublicIPs) == 1 {
			c.Set("aws:SourceIp", in.PublicIPs[0])
		} else {
			c.SetUnknown("aws:SourceIp")
		}
	case route.Proxy, route.Unknown, route.Other:
		// Whoever forwards the request decides what S3 sees.
		for _, k := range []string{"aws:SourceIp", "aws:SourceVpce", "aws:SourceVpc", "aws:VpcSourceIp"} {
			c.SetUnknown(k)
		}
	default:
		// A NAT or transit path: S3 sees an address the agent does
		// not know (the NAT gateway's, say), and no endpoint keys.
		c.SetUnknown("aws:SourceIp")
	}
	return req
}

// demandsEndpoint reports whether a denial rests on a condition about VPC
// endpoints.
func demandsEndpoint(res policy.Result) bool {
	for _, st := range res.Deciding {
		reason := strings.ToLower(st.Reason)
		for _, k := range endpointKeys {
			if strings.Contains(reason, k) {
				return true
			}
		}
	}
	return false
}

// endpointOf returns the endpoint a path goes through, or nil.
func endpointOf(top *topology.Topology, p route.Path) *topology.Endpoint {
	if p.Kind != route.GatewayEndpoint && p.Kind != route.InterfaceEndpoint {
		return nil
	}
	for i := range top.Endpoints {
		if top.Endpoints[i].ID == p.Target {
			return &top.Endpoints[i]
		}
	}
	return nil
}

// endpointFix says how to make the traffic take the endpoint.
func endpointFix(in Input, top *topology.Topology, b Bucket) string {
	rt := top.RouteTable
	if rt == nil {
		return "route the bucket's traffic through the VPC endpoint the policy names"
	}
	if ep, ok := unassociated(gatewayEndpoints(top, in.Region), rt.ID); ok && b.Result.Region == in.Region {
		return fmt.Sprintf("associate the route table with the endpoint: aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --add-route-table-ids %s", ep.ID, rt.ID)
	}
	if b.Result.Region != in.Region {
		return fmt.Sprintf("the bucket is in %s: an endpoint in %s cannot carry its traffic; reach it from an instance in its own region, or relax the policy", b.Result.Region, in.Region)
	}
	return fmt.Sprintf("create an S3 gateway endpoint in %s and associate it with %s", in.VPCID, rt.ID)
}

func describe(p route.Path) string {
	if p.Target == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + " " + p.Target
}
