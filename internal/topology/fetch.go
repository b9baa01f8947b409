package topology

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// EC2API is the part of the EC2 client Fetch calls; *ec2.Client
// satisfies it.
type EC2API interface {
	DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput,
		optFns ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput,
		optFns ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error)
	DescribeManagedPrefixLists(ctx context.Context, in *ec2.DescribeManagedPrefixListsInput,
		optFns ...func(*ec2.Options)) (*ec2.DescribeManagedPrefixListsOutput, error)
	GetManagedPrefixListEntries(ctx context.Context, in *ec2.GetManagedPrefixListEntriesInput,
		optFns ...func(*ec2.Options)) (*ec2.GetManagedPrefixListEntriesOutput, error)
	DescribePrefixLists(ctx context.Context, in *ec2.DescribePrefixListsInput,
		optFns ...func(*ec2.Options)) (*ec2.DescribePrefixListsOutput, error)
}

// The EC2 operations Fetch calls, as Problem.Call names them.
const (
	callRouteTables  = "DescribeRouteTables"
	callEndpoints    = "DescribeVpcEndpoints"
	callManagedLists = "DescribeManagedPrefixLists"
	callEntries      = "GetManagedPrefixListEntries"
	callPrefixLists  = "DescribePrefixLists"
)

// codeUnauthorized is EC2's error code for an action IAM denies.
const codeUnauthorized = "UnauthorizedOperation"

// DefaultPageSize is the MaxResults Fetch asks GetManagedPrefixListEntries
// for: the largest EC2 allows, so that S3's lists, a handful of CIDRs,
// arrive in one call.
const DefaultPageSize = 100

// maxEntryPages stops paging a prefix list that never ends: far more
// pages than any S3 list needs, so a server that keeps returning tokens
// cannot keep the agent spending the account's rate limit.
const maxEntryPages = 20

// Fetcher reads a subnet's topology from the EC2 API. The zero value is
// not usable: API is required.
type Fetcher struct {
	// API is the EC2 client, usually an *ec2.Client.
	API EC2API

	// PageSize is the MaxResults of GetManagedPrefixListEntries;
	// DefaultPageSize when zero.
	PageSize int32

	// Now stamps Topology.FetchedAt; time.Now when nil.
	Now func() time.Time
}

// Fetch reads a subnet's topology with a default Fetcher.
// See Fetcher.Fetch.
func Fetch(ctx context.Context, api EC2API, vpcID, subnetID, region string) *Topology {
	f := &Fetcher{API: api}
	return f.Fetch(ctx, vpcID, subnetID, region)
}

// Fetch reads the effective route table of subnetID, the S3 endpoints of
// vpcID in region, and the CIDRs of every prefix list the route table
// names. It never fails as a whole: each failed call becomes a Problem
// and Fetch goes on with what it can read.
//
// A fleet of agents shares one account's EC2 rate limit, so no request
// is ever repeated and nothing is asked that is not needed. A fetch
// costs:
//   - DescribeRouteTables: 1, or 2 when the subnet has no explicit
//     association and uses the main table;
//   - DescribeVpcEndpoints: 1;
//   - DescribeManagedPrefixLists: 1 if any route names a prefix list;
//   - GetManagedPrefixListEntries: 1 per list named (more only for a
//     list longer than PageSize);
//   - DescribePrefixLists: 1, only if GetManagedPrefixListEntries is
//     denied, replacing it for the remaining lists;
//   - when no route names the region's S3 list, DescribeManagedPrefixLists
//     by name and GetManagedPrefixListEntries once each, so that an S3
//     address can still be told from one that is not S3's.
//
// Either way a subnet costs 4 calls (5 through the main table).
func (f *Fetcher) Fetch(ctx context.Context, vpcID, subnetID, region string) *Topology {
	t := &Topology{}
	t.RouteTable = f.routeTable(ctx, t, vpcID, subnetID)
	t.Endpoints = f.endpoints(ctx, t, vpcID, region)
	if t.RouteTable != nil {
		t.PrefixLists = f.prefixLists(ctx, t, prefixListIDs(t.RouteTable))
	}
	if t.RouteTable != nil {
		f.s3List(ctx, t, region)
	}

	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	t.FetchedAt = now()
	return t
}

// routeTable finds the table that routes subnetID.
func (f *Fetcher) routeTable(ctx context.Context, t *Topology, vpcID, subnetID string) *RouteTable {
	out, err := f.API.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{
		Filters: []types.Filter{filter("association.subnet-id", subnetID)},
	})
	if err != nil {
		// Asking for the main table now could name the wrong table:
		// the subnet may well have an explicit association.
		t.addProblem(callRouteTables, err)
		return nil
	}
	if len(out.RouteTables) > 0 {
		return t.convertRouteTable(out.RouteTables[0], false)
	}

	// No explicit association: the subnet uses the VPC's main table,
	// which EC2 does not list under the subnet's id.
	out, err = f.API.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{
		Filters: []types.Filter{
			filter("vpc-id", vpcID),
			filter("association.main", "true"),
		},
	})
	if err != nil {
		t.addProblem(callRouteTables, err)
		return nil
	}
	if len(out.RouteTables) == 0 {
		t.Problems = append(t.Problems, Problem{
			Call:    callRouteTables,
			Message: fmt.Sprintf("no route table for subnet %s and no main table in %s", subnetID, vpcID),
		})
		return nil
	}
	return t.convertRouteTable(out.RouteTables[0], true)
}

// endpoints lists the VPC's S3 endpoints of both types and every state,
// so that a pending or failed endpoint is seen, not mistaken for none.
// A VPC has a handful at most, well within the first page.
func (f *Fetcher) endpoints(ctx context.Context, t *Topology, vpcID, region string) []Endpoint {
	out, err := f.API.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{
		Filters: []types.Filter{
			filter("vpc-id", vpcID),
			filter("service-name", "com.amazonaws."+region+".s3"),
		},
	})
	if err != nil {
		t.addProblem(callEndpoints, err)
		return nil
	}

	// Not nil even when empty: "no endpoints" differs from "not read".
	eps := make([]Endpoint, 0, len(out.VpcEndpoints))
	for _, e := range out.VpcEndpoints {
		ep := Endpoint{
			ID:             aws.ToString(e.VpcEndpointId),
			Type:           EndpointType(e.VpcEndpointType),
			ServiceName:    aws.ToString(e.ServiceName),
			State:          string(e.State),
			RouteTableIDs:  nilIfEmpty(e.RouteTableIds),
			PolicyDocument: aws.ToString(e.PolicyDocument),
			PrivateDNS:     aws.ToBool(e.PrivateDnsEnabled),
			SubnetIDs:      nilIfEmpty(e.SubnetIds),
		}
		for _, d := range e.DnsEntries {
			ep.DNSNames = append(ep.DNSNames, aws.ToString(d.DnsName))
		}
		eps = append(eps, ep)
	}
	return eps
}

// prefixLists reads the name and CIDRs of each list in ids.
func (f *Fetcher) prefixLists(ctx context.Context, t *Topology,
	ids []string) map[string]PrefixList {

	if len(ids) == 0 {
		return nil
	}
	names := f.prefixListNames(ctx, t, ids)

	lists := make(map[string]PrefixList, len(ids))
	for i, id := range ids {
		cidrs, err := f.entries(ctx, t, id)
		if isCode(err, codeUnauthorized) {
			// Roles written before managed prefix lists existed may
			// allow only the older call. It reads every remaining list
			// at once, and asking the denied call again would only
			// spend the rate limit on the same answer.
			t.addProblem(callEntries, err)
			f.describePrefixLists(ctx, t, ids[i:], lists)
			break
		}
		if err != nil {
			t.addProblem(callEntries, err)
			continue
		}
		lists[id] = PrefixList{ID: id, Name: names[id], CIDRs: cidrs}
	}
	return lists
}

// s3List makes sure t knows the region's S3 prefix list, reading it by
// name when no route named it, and records its id in t.S3PrefixListID.
func (f *Fetcher) s3List(ctx context.Context, t *Topology, region string) {
	name := "com.amazonaws." + region + ".s3"
	for id, pl := range t.PrefixLists {
		if pl.Name == name {
			t.S3PrefixListID = id
			return
		}
	}
	// A prefix list call that failed already would only fail again.
	for _, p := range t.Problems {
		if p.Call == callManagedLists || p.Call == callEntries {
			return
		}
	}

	out, err := f.API.DescribeManagedPrefixLists(ctx, &ec2.DescribeManagedPrefixListsInput{
		Filters: []types.Filter{filter("prefix-list-name", name)},
	})
	if err != nil {
		t.addProblem(callManagedLists, err)
		return
	}
	if len(out.PrefixLists) == 0 {
		return
	}
	id := aws.ToString(out.PrefixLists[0].PrefixListId)
	cidrs, err := f.entries(ctx, t, id)
	if err != nil {
		t.addProblem(callEntries, err)
		return
	}
	if t.PrefixLists == nil {
		t.PrefixLists = map[string]PrefixList{}
	}
	t.PrefixLists[id] = PrefixList{ID: id, Name: name, CIDRs: cidrs}
	t.S3PrefixListID = id
}

// prefixListNames asks for the names of all lists in one call. Without
// them the entries are still worth reading, so a failure only leaves
// names empty.
func (f *Fetcher) prefixListNames(ctx context.Context, t *Topology,
	ids []string) map[string]string {

	out, err := f.API.DescribeManagedPrefixLists(ctx, &ec2.DescribeManagedPrefixListsInput{
		PrefixListIds: ids,
	})
	if err != nil {
		t.addProblem(callManagedLists, err)
		return nil
	}
	names := make(map[string]string, len(out.PrefixLists))
	for _, pl := range out.PrefixLists {
		names[aws.ToString(pl.PrefixListId)] = aws.ToString(pl.PrefixListName)
	}
	return names
}

// entries reads one list's CIDRs, following NextToken.
func (f *Fetcher) entries(ctx context.Context, t *Topology, id string) ([]netip.Prefix, error) {
	size := f.PageSize
	if size == 0 {
		size = DefaultPageSize
	}

	var cidrs []netip.Prefix
	var token *string
	for range maxEntryPages {
		out, err := f.API.GetManagedPrefixListEntries(ctx, &ec2.GetManagedPrefixListEntriesInput{
			PrefixListId: aws.String(id),
			MaxResults:   aws.Int32(size),
			NextToken:    token,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range out.Entries {
			cidrs = t.appendPrefix(cidrs, callEntries, id, aws.ToString(e.Cidr))
		}
		if aws.ToString(out.NextToken) == "" {
			return cidrs, nil
		}
		token = out.NextToken
	}
	return nil, fmt.Errorf("read entries of %s: still more after %d pages", id, maxEntryPages)
}

// describePrefixLists reads the names and CIDRs of AWS-managed lists
// with the older call, into lists.
func (f *Fetcher) describePrefixLists(ctx context.Context, t *Topology,
	ids []string, lists map[string]PrefixList) {

	out, err := f.API.DescribePrefixLists(ctx, &ec2.DescribePrefixListsInput{
		PrefixListIds: ids,
	})
	if err != nil {
		t.addProblem(callPrefixLists, err)
		return
	}
	for _, pl := range out.PrefixLists {
		id := aws.ToString(pl.PrefixListId)
		list := PrefixList{ID: id, Name: aws.ToString(pl.PrefixListName)}
		for _, c := range pl.Cidrs {
			list.CIDRs = t.appendPrefix(list.CIDRs, callPrefixLists, id, c)
		}
		lists[id] = list
	}

	// The older call knows only AWS-managed lists; a customer-managed
	// list in a route stays unread.
	for _, id := range ids {
		if _, ok := lists[id]; !ok {
			t.Problems = append(t.Problems, Problem{
				Call:    callPrefixLists,
				Message: "prefix list " + id + " not returned",
			})
		}
	}
}

// convertRouteTable turns the SDK's table into the model. A route whose
// destination does not parse is left out, with a problem.
func (t *Topology) convertRouteTable(in types.RouteTable, implicit bool) *RouteTable {
	rt := &RouteTable{ID: aws.ToString(in.RouteTableId), Implicit: implicit}
	for _, a := range in.Associations {
		if aws.ToBool(a.Main) {
			rt.Main = true
		}
	}

	for _, r := range in.Routes {
		route := Route{
			PrefixListID: aws.ToString(r.DestinationPrefixListId),
			Target:       routeTarget(r),
			Blackhole:    r.State == types.RouteStateBlackhole,
			Origin:       string(r.Origin),
		}
		if route.PrefixListID == "" {
			dest := aws.ToString(r.DestinationCidrBlock)
			if dest == "" {
				dest = aws.ToString(r.DestinationIpv6CidrBlock)
			}
			p, err := netip.ParsePrefix(dest)
			if err != nil {
				t.Problems = append(t.Problems, Problem{
					Call:    callRouteTables,
					Message: fmt.Sprintf("route table %s: route to %q: %v", rt.ID, dest, err),
				})
				continue
			}
			route.Destination = p
		}
		rt.Routes = append(rt.Routes, route)
	}
	return rt
}

// routeTarget returns the one target id a route carries. An instance
// route also names the instance's interface; the instance says more.
func routeTarget(r types.Route) string {
	for _, id := range []*string{
		r.GatewayId,
		r.NatGatewayId,
		r.TransitGatewayId,
		r.VpcPeeringConnectionId,
		r.EgressOnlyInternetGatewayId,
		r.InstanceId,
		r.NetworkInterfaceId,
		r.CarrierGatewayId,
		r.LocalGatewayId,
		r.CoreNetworkArn,
	} {
		if s := aws.ToString(id); s != "" {
			return s
		}
	}
	return ""
}

// prefixListIDs returns the lists rt's routes name, each once, in route
// order.
func prefixListIDs(rt *RouteTable) []string {
	var ids []string
	for _, r := range rt.Routes {
		if r.PrefixListID != "" && !slices.Contains(ids, r.PrefixListID) {
			ids = append(ids, r.PrefixListID)
		}
	}
	return ids
}

// appendPrefix parses one CIDR of list id into cidrs; a CIDR that does
// not parse is recorded as a problem of call and skipped.
func (t *Topology) appendPrefix(cidrs []netip.Prefix, call, id, cidr string) []netip.Prefix {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Problems = append(t.Problems, Problem{
			Call:    call,
			Message: fmt.Sprintf("prefix list %s: entry %q: %v", id, cidr, err),
		})
		return cidrs
	}
	return append(cidrs, p)
}

// addProblem records a failed call, with EC2's error code when there is
// one.
func (t *Topology) addProblem(call string, err error) {
	p := Problem{Call: call, Message: err.Error()}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		p.Code = apiErr.ErrorCode()
		p.Message = apiErr.ErrorMessage()
	}
	t.Problems = append(t.Problems, p)
}

func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}

// nilIfEmpty drops the empty lists EC2 sends for sets that do not apply
// to an endpoint's type, so the model reads the same either way.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func filter(name, value string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: []string{value}}
}
