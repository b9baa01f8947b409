package ec2api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/pathagent/pathagent/internal/lab/ec2api"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

const (
	testKey    = "AKIDLABTEST00000001"
	testSecret = "lab-secret-for-tests"
	testVPC    = "vpc-0lab0000000000001"
	testSubnet = "subnet-0lab000000000001"
	testRegion = "us-east-1"
)

var testCreds = aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}

// world is a VPC with one table per kind of association and route, two
// endpoints and two prefix lists, one AWS-managed and one the account's.
func world() *scenario.Scenario {
	return &scenario.Scenario{
		Name:      "test",
		Region:    testRegion,
		AccountID: "111122223333",
		Instance: scenario.Instance{
			ID:       "i-0a1b2c3d4e5f60718",
			VPCID:    testVPC,
			SubnetID: testSubnet,
		},
		RouteTables: []scenario.RouteTable{
			{
				ID:   "rtb-main",
				Main: true,
				Routes: []scenario.Route{
					{Destination: "10.16.0.0/16", Target: "local", Origin: "CreateRouteTable"},
				},
			},
			{
				ID:      "rtb-private",
				Subnets: []string{testSubnet},
				Routes: []scenario.Route{
					{Destination: "10.16.0.0/16", Target: "local", Origin: "CreateRouteTable"},
					{Destination: "0.0.0.0/0", Target: "nat-0001"},
					{PrefixList: "pl-63a5400a", Target: "vpce-gw"},
				},
			},
		},
		PrefixLists: []scenario.PrefixList{
			{
				ID:   "pl-63a5400a",
				Name: "com.amazonaws.us-east-1.s3",
				CIDRs: []string{
					"10.52.216.0/22", "10.54.231.0/24", "10.3.5.0/24",
					"10.16.0.0/15", "10.18.0.0/15",
				},
			},
			{ID: "pl-own", Name: "office", CIDRs: []string{"198.51.100.0/24"}},
		},
		Endpoints: []scenario.Endpoint{
			{
				ID:          "vpce-gw",
				Type:        "Gateway",
				Service:     "com.amazonaws.us-east-1.s3",
				RouteTables: []string{"rtb-private"},
			},
			{
				ID:         "vpce-if",
				Type:       "Interface",
				Service:    "com.amazonaws.us-east-1.s3",
				State:      "pending",
				Policy:     `{"Statement":[]}`,
				PrivateDNS: true,
				DNSNames:   []string{"*.vpce-if.s3.us-east-1.vpce.amazonaws.com"},
				Subnets:    []string{testSubnet},
			},
			{ID: "vpce-ddb", Type: "Gateway", Service: "com.amazonaws.us-east-1.dynamodb"},
		},
	}
}

// start serves sc on a loopback port and returns the server and a client
// that signs with testCreds. The client makes one attempt per call, so
// that call counts show requests, not the SDK's retries.
func start(t *testing.T, sc *scenario.Scenario) (*ec2api.Server, *ec2.Client, *httptest.Server) {
	t.Helper()
	srv := ec2api.New(sc, testCreds)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, newClient(ts, testRegion, testKey, testSecret), ts
}

func newClient(ts *httptest.Server, region, key, secret string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           region,
		BaseEndpoint:     aws.String(ts.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
		HTTPClient:       ts.Client(),
		RetryMaxAttempts: 1,
	})
}

// errCode returns the EC2 error code and HTTP status of err; empty and
// zero for nil.
func errCode(t *testing.T, err error) (string, int) {
	t.Helper()
	if err == nil {
		return "", 0
	}
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	if !errors.As(err, &apiErr) || !errors.As(err, &respErr) {
		t.Fatalf("not an API error: %v", err)
	}
	return apiErr.ErrorCode(), respErr.HTTPStatusCode()
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func fs(f ...types.Filter) []types.Filter { return f }

func TestDescribeRouteTables(t *testing.T) {
	tests := []struct {
		name     string
		in       ec2.DescribeRouteTablesInput
		want     []string
		wantCode string
	}{
		{
			name: "explicit association",
			in:   ec2.DescribeRouteTablesInput{Filters: fs(filter("association.subnet-id", testSubnet))},
			want: []string{"rtb-private"},
		},
		{
			name: "no association for another subnet",
			in:   ec2.DescribeRouteTablesInput{Filters: fs(filter("association.subnet-id", "subnet-other"))},
		},
		{
			name: "main table of the vpc",
			in: ec2.DescribeRouteTablesInput{Filters: []types.Filter{
				filter("vpc-id", testVPC),
				filter("association.main", "true"),
			}},
			want: []string{"rtb-main"},
		},
		{
			// Only tables with an explicit subnet association have one
			// whose main is false.
			name: "association.main false",
			in:   ec2.DescribeRouteTablesInput{Filters: fs(filter("association.main", "false"))},
			want: []string{"rtb-private"},
		},
		{
			name: "other vpc",
			in:   ec2.DescribeRouteTablesInput{Filters: fs(filter("vpc-id", "vpc-other"))},
		},
		{
			// Values of one filter are alternatives.
			name: "two ids in one filter",
			in: ec2.DescribeRouteTablesInput{
				Filters: fs(filter("route-table-id", "rtb-private", "rtb-main")),
			},
			want: []string{"rtb-main", "rtb-private"},
		},
		{
			name: "by id",
			in:   ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-private"}},
			want: []string{"rtb-private"},
		},
		{
			name:     "unknown id",
			in:       ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-main", "rtb-gone"}},
			wantCode: "InvalidRouteTableID.NotFound",
		},
		{
			name:     "unknown filter",
			in:       ec2.DescribeRouteTablesInput{Filters: fs(filter("tag:Name", "x"))},
			wantCode: "InvalidParameterValue",
		},
	}
	_, client, _ := start(t, world())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.DescribeRouteTables(context.Background(), &tt.in)
			if code, _ := errCode(t, err); code != tt.wantCode {
				t.Fatalf("error code = %q, want %q (%v)", code, tt.wantCode, err)
			}
			if err != nil {
				return
			}
			var got []string
			for _, rt := range out.RouteTables {
				got = append(got, aws.ToString(rt.RouteTableId))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tables = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRouteFields checks that the SDK finds every target in the field
// EC2 uses for its kind.
func TestRouteFields(t *testing.T) {
	tests := []struct {
		name  string
		route scenario.Route
		want  types.Route
	}{
		{
			name:  "local",
			route: scenario.Route{Destination: "10.16.0.0/16", Target: "local", Origin: "CreateRouteTable"},
			want: types.Route{
				DestinationCidrBlock: aws.String("10.16.0.0/16"),
				GatewayId:            aws.String("local"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginCreateRouteTable,
			},
		},
		{
			name:  "gateway endpoint",
			route: scenario.Route{PrefixList: "pl-63a5400a", Target: "vpce-gw"},
			want: types.Route{
				DestinationPrefixListId: aws.String("pl-63a5400a"),
				GatewayId:               aws.String("vpce-gw"),
				State:                   types.RouteStateActive,
				Origin:                  types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "internet gateway",
			route: scenario.Route{Destination: "0.0.0.0/0", Target: "igw-1"},
			want: types.Route{
				DestinationCidrBlock: aws.String("0.0.0.0/0"),
				GatewayId:            aws.String("igw-1"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "blackhole nat gateway",
			route: scenario.Route{Destination: "0.0.0.0/0", Target: "nat-1", State: "blackhole"},
			want: types.Route{
				DestinationCidrBlock: aws.String("0.0.0.0/0"),
				NatGatewayId:         aws.String("nat-1"),
				State:                types.RouteStateBlackhole,
				Origin:               types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "transit gateway",
			route: scenario.Route{Destination: "10.0.0.0/8", Target: "tgw-1"},
			want: types.Route{
				DestinationCidrBlock: aws.String("10.0.0.0/8"),
				TransitGatewayId:     aws.String("tgw-1"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "peering",
			route: scenario.Route{Destination: "172.16.0.0/12", Target: "pcx-1"},
			want: types.Route{
				DestinationCidrBlock:   aws.String("172.16.0.0/12"),
				VpcPeeringConnectionId: aws.String("pcx-1"),
				State:                  types.RouteStateActive,
				Origin:                 types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "egress-only internet gateway",
			route: scenario.Route{Destination: "::/0", Target: "eigw-1"},
			want: types.Route{
				DestinationIpv6CidrBlock:    aws.String("::/0"),
				EgressOnlyInternetGatewayId: aws.String("eigw-1"),
				State:                       types.RouteStateActive,
				Origin:                      types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "network interface",
			route: scenario.Route{Destination: "192.0.2.0/24", Target: "eni-1"},
			want: types.Route{
				DestinationCidrBlock: aws.String("192.0.2.0/24"),
				NetworkInterfaceId:   aws.String("eni-1"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginCreateRoute,
			},
		},
		{
			name:  "instance",
			route: scenario.Route{Destination: "192.0.2.0/24", Target: "i-1"},
			want: types.Route{
				DestinationCidrBlock: aws.String("192.0.2.0/24"),
				InstanceId:           aws.String("i-1"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginCreateRoute,
			},
		},
		{
			name: "propagated from a virtual private gateway",
			route: scenario.Route{
				Destination: "192.168.0.0/16",
				Target:      "vgw-1",
				Origin:      "EnableVgwRoutePropagation",
			},
			want: types.Route{
				DestinationCidrBlock: aws.String("192.168.0.0/16"),
				GatewayId:            aws.String("vgw-1"),
				State:                types.RouteStateActive,
				Origin:               types.RouteOriginEnableVgwRoutePropagation,
			},
		},
	}
	sc := world()
	sc.RouteTables[0].Routes = nil
	for _, tt := range tests {
		sc.RouteTables[0].Routes = append(sc.RouteTables[0].Routes, tt.route)
	}
	_, client, _ := start(t, sc)

	out, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{
		RouteTableIds: []string{"rtb-main"},
	})
	if err != nil {
		t.Fatal(err)
	}
	routes := out.RouteTables[0].Routes
	if len(routes) != len(tests) {
		t.Fatalf("got %d routes, want %d", len(routes), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(routes[i], tt.want) {
				t.Errorf("route = %+v, want %+v", routes[i], tt.want)
			}
		})
	}
}

func TestRouteTableAssociations(t *testing.T) {
	sc := world()
	sc.RouteTables[0].Subnets = []string{"subnet-b"}
	_, client, _ := start(t, sc)

	out, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{
		RouteTableIds: []string{"rtb-main"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := out.RouteTables[0]
	if got := aws.ToString(rt.VpcId); got != testVPC {
		t.Errorf("vpc = %q, want %q", got, testVPC)
	}

	type assoc struct {
		main   bool
		subnet string
		state  types.RouteTableAssociationStateCode
	}
	var got []assoc
	for _, a := range rt.Associations {
		if !strings.HasPrefix(aws.ToString(a.RouteTableAssociationId), "rtbassoc-") {
			t.Errorf("association id = %q", aws.ToString(a.RouteTableAssociationId))
		}
		got = append(got, assoc{aws.ToBool(a.Main), aws.ToString(a.SubnetId), a.AssociationState.State})
	}
	// A main table can also be associated with a subnet explicitly.
	want := []assoc{
		{main: true, state: types.RouteTableAssociationStateCodeAssociated},
		{subnet: "subnet-b", state: types.RouteTableAssociationStateCodeAssociated},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("associations = %+v, want %+v", got, want)
	}
}

func TestDescribeVpcEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		in       ec2.DescribeVpcEndpointsInput
		want     []string
		wantCode string
	}{
		{
			name: "s3 in the vpc, every type and state",
			in: ec2.DescribeVpcEndpointsInput{Filters: []types.Filter{
				filter("vpc-id", testVPC),
				filter("service-name", "com.amazonaws.us-east-1.s3"),
			}},
			want: []string{"vpce-gw", "vpce-if"},
		},
		{
			name: "gateway only",
			in:   ec2.DescribeVpcEndpointsInput{Filters: fs(filter("vpc-endpoint-type", "Gateway"))},
			want: []string{"vpce-gw", "vpce-ddb"},
		},
		{
			name: "pending only",
			in:   ec2.DescribeVpcEndpointsInput{Filters: fs(filter("vpc-endpoint-state", "pending"))},
			want: []string{"vpce-if"},
		},
		{
			name: "by id",
			in:   ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{"vpce-ddb"}},
			want: []string{"vpce-ddb"},
		},
		{
			name:     "unknown id",
			in:       ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{"vpce-gone"}},
			wantCode: "InvalidVpcEndpointId.NotFound",
		},
	}
	_, client, _ := start(t, world())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.DescribeVpcEndpoints(context.Background(), &tt.in)
			if code, _ := errCode(t, err); code != tt.wantCode {
				t.Fatalf("error code = %q, want %q (%v)", code, tt.wantCode, err)
			}
			if err != nil {
				return
			}
			var got []string
			for _, e := range out.VpcEndpoints {
				got = append(got, aws.ToString(e.VpcEndpointId))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("endpoints = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVpcEndpointFields(t *testing.T) {
	_, client, _ := start(t, world())
	out, err := client.DescribeVpcEndpoints(context.Background(), &ec2.DescribeVpcEndpointsInput{
		VpcEndpointIds: []string{"vpce-gw", "vpce-if"},
	})
	if err != nil {
		t.Fatal(err)
	}

	type fields struct {
		Type        types.VpcEndpointType
		State       types.State
		Service     string
		VPC         string
		Policy      string
		RouteTables []string
		Subnets     []string
		ENIs        int
		DNSNames    []string
		PrivateDNS  *bool
	}
	var got []fields
	for _, e := range out.VpcEndpoints {
		f := fields{
			Type:        e.VpcEndpointType,
			State:       e.State,
			Service:     aws.ToString(e.ServiceName),
			VPC:         aws.ToString(e.VpcId),
			Policy:      aws.ToString(e.PolicyDocument),
			RouteTables: e.RouteTableIds,
			Subnets:     e.SubnetIds,
			ENIs:        len(e.NetworkInterfaceIds),
			PrivateDNS:  e.PrivateDnsEnabled,
		}
		for _, d := range e.DnsEntries {
			f.DNSNames = append(f.DNSNames, aws.ToString(d.DnsName))
		}
		got = append(got, f)
	}
	want := []fields{
		{
			Type:    types.VpcEndpointTypeGateway,
			State:   "available", // lower case on the wire, unlike the SDK's constants
			Service: "com.amazonaws.us-east-1.s3",
			VPC:     testVPC,
			// No policy in the scenario: EC2 reports full access.
			Policy: `{"Version":"2008-10-17","Statement":[` +
				`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`,
			RouteTables: []string{"rtb-private"},
			Subnets:     []string{}, // an empty set, as EC2 sends it
		},
		{
			Type:        types.VpcEndpointTypeInterface,
			RouteTables: []string{},
			State:       "pending",
			Service:     "com.amazonaws.us-east-1.s3",
			VPC:         testVPC,
			Policy:      `{"Statement":[]}`,
			Subnets:     []string{testSubnet},
			ENIs:        1,
			DNSNames:    []string{"*.vpce-if.s3.us-east-1.vpce.amazonaws.com"},
			PrivateDNS:  aws.Bool(true),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints =\n%#v\nwant\n%#v", got, want)
	}
}

func TestGetManagedPrefixListEntries(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		maxResults *int32
		want       [][]string // CIDRs page by page
		wantCode   string
	}{
		{
			name:       "pages of two",
			id:         "pl-63a5400a",
			maxResults: aws.Int32(2),
			want: [][]string{
				{"10.52.216.0/22", "10.54.231.0/24"},
				{"10.3.5.0/24", "10.16.0.0/15"},
				{"10.18.0.0/15"},
			},
		},
		{
			// An exact fit ends without a token, not with an empty page.
			name:       "one exact page",
			id:         "pl-63a5400a",
			maxResults: aws.Int32(5),
			want: [][]string{{
				"10.52.216.0/22", "10.54.231.0/24", "10.3.5.0/24",
				"10.16.0.0/15", "10.18.0.0/15",
			}},
		},
		{
			name: "no MaxResults",
			id:   "pl-own",
			want: [][]string{{"198.51.100.0/24"}},
		},
		{
			name:       "MaxResults too large",
			id:         "pl-63a5400a",
			maxResults: aws.Int32(101),
			wantCode:   "InvalidParameterValue",
		},
		{
			name:     "unknown list",
			id:       "pl-gone",
			wantCode: "InvalidPrefixListID.NotFound",
		},
	}
	srv, client, _ := start(t, world())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Calls()["GetManagedPrefixListEntries"]
			var got [][]string
			var token *string
			for {
				out, err := client.GetManagedPrefixListEntries(context.Background(),
					&ec2.GetManagedPrefixListEntriesInput{
						PrefixListId: aws.String(tt.id),
						MaxResults:   tt.maxResults,
						NextToken:    token,
					})
				if code, _ := errCode(t, err); code != tt.wantCode {
					t.Fatalf("error code = %q, want %q (%v)", code, tt.wantCode, err)
				}
				if err != nil {
					return
				}
				var page []string
				for _, e := range out.Entries {
					page = append(page, aws.ToString(e.Cidr))
				}
				got = append(got, page)
				if out.NextToken == nil {
					break
				}
				token = out.NextToken
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("pages = %v, want %v", got, tt.want)
			}
			if calls := srv.Calls()["GetManagedPrefixListEntries"] - before; calls != len(tt.want) {
				t.Errorf("calls = %d, want %d", calls, len(tt.want))
			}
		})
	}
}

// TestPaginationTokenExpires checks that a token stops working when the
// list changes between pages, and that a made-up token never works.
func TestPaginationTokenExpires(t *testing.T) {
	srv, client, _ := start(t, world())
	ctx := context.Background()
	first, err := client.GetManagedPrefixListEntries(ctx, &ec2.GetManagedPrefixListEntriesInput{
		PrefixListId: aws.String("pl-63a5400a"),
		MaxResults:   aws.Int32(2),
	})
	if err != nil {
		t.Fatal(err)
	}

	changed := world()
	changed.PrefixLists[0].CIDRs = changed.PrefixLists[0].CIDRs[1:]
	srv.SetScenario(changed)

	for _, token := range []*string{first.NextToken, aws.String("bm90LWEtdG9rZW4")} {
		_, err = client.GetManagedPrefixListEntries(ctx, &ec2.GetManagedPrefixListEntriesInput{
			PrefixListId: aws.String("pl-63a5400a"),
			MaxResults:   aws.Int32(2),
			NextToken:    token,
		})
		if code, status := errCode(t, err); code != "InvalidPaginationToken" || status != 400 {
			t.Errorf("token %q: got %s %d, want InvalidPaginationToken 400", *token, code, status)
		}
	}
}

func TestDescribeManagedPrefixLists(t *testing.T) {
	_, client, _ := start(t, world())
	ctx := context.Background()

	out, err := client.DescribeManagedPrefixLists(ctx, &ec2.DescribeManagedPrefixListsInput{
		PrefixListIds: []string{"pl-own", "pl-63a5400a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	type list struct{ ID, Name, Owner, Family, State, ARN string }
	var got []list
	for _, pl := range out.PrefixLists {
		got = append(got, list{
			aws.ToString(pl.PrefixListId), aws.ToString(pl.PrefixListName),
			aws.ToString(pl.OwnerId), aws.ToString(pl.AddressFamily),
			string(pl.State), aws.ToString(pl.PrefixListArn),
		})
	}
	want := []list{
		{"pl-63a5400a", "com.amazonaws.us-east-1.s3", "AWS", "IPv4", "create-complete",
			"arn:aws:ec2:us-east-1:aws:prefix-list/pl-63a5400a"},
		{"pl-own", "office", "111122223333", "IPv4", "create-complete",
			"arn:aws:ec2:us-east-1:111122223333:prefix-list/pl-own"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lists =\n%+v\nwant\n%+v", got, want)
	}

	out, err = client.DescribeManagedPrefixLists(ctx, &ec2.DescribeManagedPrefixListsInput{
		Filters: []types.Filter{filter("prefix-list-name", "com.amazonaws.us-east-1.s3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.PrefixLists) != 1 || aws.ToString(out.PrefixLists[0].PrefixListId) != "pl-63a5400a" {
		t.Errorf("by name: got %+v", out.PrefixLists)
	}

	_, err = client.DescribeManagedPrefixLists(ctx, &ec2.DescribeManagedPrefixListsInput{
		PrefixListIds: []string{"pl-gone"},
	})
	if code, _ := errCode(t, err); code != "InvalidPrefixListID.NotFound" {
		t.Errorf("unknown id: code %q, want InvalidPrefixListID.NotFound", code)
	}
}

func TestDescribePrefixLists(t *testing.T) {
	tests := []struct {
		name     string
		ids      []string
		want     map[string][]string // name and CIDRs by id
		wantCode string
	}{
		{
			name: "aws-managed list",
			ids:  []string{"pl-63a5400a"},
			want: map[string][]string{"pl-63a5400a": {"com.amazonaws.us-east-1.s3",
				"10.52.216.0/22", "10.54.231.0/24", "10.3.5.0/24", "10.16.0.0/15", "10.18.0.0/15"}},
		},
		{
			// The older call does not know customer-managed lists.
			name:     "account's own list",
			ids:      []string{"pl-own"},
			wantCode: "InvalidPrefixListID.NotFound",
		},
	}
	_, client, _ := start(t, world())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.DescribePrefixLists(context.Background(), &ec2.DescribePrefixListsInput{
				PrefixListIds: tt.ids,
			})
			if code, _ := errCode(t, err); code != tt.wantCode {
				t.Fatalf("error code = %q, want %q (%v)", code, tt.wantCode, err)
			}
			if err != nil {
				return
			}
			got := map[string][]string{}
			for _, pl := range out.PrefixLists {
				got[aws.ToString(pl.PrefixListId)] = append(
					[]string{aws.ToString(pl.PrefixListName)}, pl.Cidrs...)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lists = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name       string
		region     string
		key        string
		secret     string
		serverSkew time.Duration // how far the server's clock is ahead
		wantCode   string
		wantStatus int
	}{
		{name: "good", region: testRegion, key: testKey, secret: testSecret},
		{
			name: "wrong secret", region: testRegion, key: testKey, secret: "guess",
			wantCode: "AuthFailure", wantStatus: 401,
		},
		{
			name: "unknown key", region: testRegion, key: "AKIDOTHER", secret: testSecret,
			wantCode: "AuthFailure", wantStatus: 401,
		},
		{
			name: "other region", region: "eu-west-1", key: testKey, secret: testSecret,
			wantCode: "AuthFailure", wantStatus: 401,
		},
		{
			name: "clock an hour off", region: testRegion, key: testKey, secret: testSecret,
			serverSkew: time.Hour, wantCode: "RequestExpired", wantStatus: 400,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, ts := start(t, world())
			srv.Now = func() time.Time { return time.Now().Add(tt.serverSkew) }
			client := newClient(ts, tt.region, tt.key, tt.secret)

			_, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{})
			code, status := errCode(t, err)
			if code != tt.wantCode || status != tt.wantStatus {
				t.Errorf("got %q %d, want %q %d (%v)", code, status, tt.wantCode, tt.wantStatus, err)
			}
		})
	}
}

func TestSessionToken(t *testing.T) {
	sc := world()
	creds := testCreds
	creds.SessionToken = "session-token"
	ts := httptest.NewServer(ec2api.New(sc, creds))
	defer ts.Close()

	for _, tt := range []struct {
		name     string
		token    string
		wantCode string
	}{
		{name: "token sent", token: "session-token"},
		{name: "token missing", wantCode: "AuthFailure"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := ec2.New(ec2.Options{
				Region:           testRegion,
				BaseEndpoint:     aws.String(ts.URL),
				Credentials:      credentials.NewStaticCredentialsProvider(testKey, testSecret, tt.token),
				HTTPClient:       ts.Client(),
				RetryMaxAttempts: 1,
			})
			_, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{})
			if code, _ := errCode(t, err); code != tt.wantCode {
				t.Errorf("code = %q, want %q", code, tt.wantCode)
			}
		})
	}
}

func TestDenyAndDryRun(t *testing.T) {
	tests := []struct {
		name        string
		deny        []string
		dryRun      bool
		wantCode    string
		wantStatus  int
		wantMessage string
	}{
		{name: "allowed"},
		{
			name:        "denied",
			deny:        []string{"DescribeVpcEndpoints"},
			wantCode:    "UnauthorizedOperation",
			wantStatus:  403,
			wantMessage: "You are not authorized to perform this operation.",
		},
		{
			name:       "dry run allowed",
			dryRun:     true,
			wantCode:   "DryRunOperation",
			wantStatus: 412,
			wantMessage: "Request would have succeeded, " +
				"but DryRun flag is set.",
		},
		{
			name:        "dry run denied",
			deny:        []string{"DescribeVpcEndpoints"},
			dryRun:      true,
			wantCode:    "UnauthorizedOperation",
			wantStatus:  403,
			wantMessage: "You are not authorized to perform this operation.",
		},
		{
			// Denying one action leaves the others alone.
			name: "other action denied",
			deny: []string{"DescribeRouteTables"},
		},
	}
	srv, client, _ := start(t, world())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetDeny(tt.deny...)
			_, err := client.DescribeVpcEndpoints(context.Background(), &ec2.DescribeVpcEndpointsInput{
				DryRun: aws.Bool(tt.dryRun),
			})
			code, status := errCode(t, err)
			if code != tt.wantCode || status != tt.wantStatus {
				t.Fatalf("got %q %d, want %q %d", code, status, tt.wantCode, tt.wantStatus)
			}
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorMessage() != tt.wantMessage {
				t.Errorf("message = %q, want %q", apiErr.ErrorMessage(), tt.wantMessage)
			}
		})
	}
}

// TestRawRequests sends hand-made requests, signed with the SDK's signer,
// to check what the SDK client never sends.
func TestRawRequests(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		tamper     string // replaces the body after signing, if set
		unsigned   bool
		wantStatus int
		wantCode   string
	}{
		{
			name:       "good",
			body:       "Action=DescribePrefixLists&Version=2016-11-15",
			wantStatus: 200,
		},
		{
			name:       "unknown action",
			body:       "Action=RunInstances&Version=2016-11-15",
			wantStatus: 400,
			wantCode:   "InvalidAction",
		},
		{
			name:       "no version",
			body:       "Action=DescribeRouteTables",
			wantStatus: 400,
			wantCode:   "NoSuchVersion",
		},
		{
			name:       "body changed after signing",
			body:       "Action=DescribeRouteTables&Version=2016-11-15&RouteTableId.1=rtb-main",
			tamper:     "Action=DescribeRouteTables&Version=2016-11-15&RouteTableId.1=rtb-private",
			wantStatus: 401,
			wantCode:   "AuthFailure",
		},
		{
			name:       "unsigned",
			body:       "Action=DescribeRouteTables&Version=2016-11-15",
			unsigned:   true,
			wantStatus: 401,
			wantCode:   "AuthFailure",
		},
	}
	_, _, ts := start(t, world())
	signer := v4.NewSigner()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if !tt.unsigned {
				sum := sha256.Sum256([]byte(tt.body))
				err = signer.SignHTTP(context.Background(), testCreds, req,
					hex.EncodeToString(sum[:]), "ec2", testRegion, time.Now())
				if err != nil {
					t.Fatal(err)
				}
			}
			if tt.tamper != "" {
				req.Body = io.NopCloser(strings.NewReader(tt.tamper))
				req.ContentLength = int64(len(tt.tamper))
			}

			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d\n%s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode == "" {
				return
			}

			var doc struct {
				XMLName   xml.Name `xml:"Response"`
				Code      string   `xml:"Errors>Error>Code"`
				RequestID string   `xml:"RequestID"`
			}
			if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&doc); err != nil {
				t.Fatalf("decode error document: %v\n%s", err, body)
			}
			if doc.Code != tt.wantCode || doc.RequestID == "" {
				t.Errorf("code %q request id %q, want code %q and an id", doc.Code, doc.RequestID, tt.wantCode)
			}
		})
	}
}

// TestConcurrentCallsAndSwaps counts calls made from many goroutines
// while the scenario changes under them.
func TestConcurrentCallsAndSwaps(t *testing.T) {
	const callers = 16
	srv, client, _ := start(t, world())

	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if i%4 == 0 {
				srv.SetScenario(world())
			}
			_, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	want := map[string]int{"DescribeRouteTables": callers}
	if got := srv.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}
