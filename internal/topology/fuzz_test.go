package topology_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/pathagent/pathagent/internal/topology"
)

// fuzzStatuses are the statuses a fuzzed answer comes with: EC2 answers
// 200, or 4xx and 5xx with an error document.
var fuzzStatuses = []int{200, 400, 403, 500, 503}

// maxFuzzCalls bounds the calls of one Fetch in the fuzz target: the route
// tables twice, the endpoints, the list names, and at most 20 pages for
// each list; a body may name many lists, so the bound is per list named.
func maxFuzzCalls(lists int) int { return 2 + 1 + 1 + 1 + 20*(lists+1) + 1 }

// FuzzFetchResponse answers every call a real ec2.Client makes for Fetch
// with the same fuzzed body and status. Fetch must not panic or loop, and
// what it returns must be well formed: every failed call a problem, every
// route with exactly one destination, every prefix list under its own id.
func FuzzFetchResponse(f *testing.F) {
	for _, s := range fuzzBodies {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(4), []byte(`<Response><Errors><Error><Code>RequestLimitExceeded</Code>`+
		`<Message>slow down</Message></Error></Errors></Response>`))
	f.Add(uint8(2), []byte(`<Response><Errors><Error><Code>UnauthorizedOperation</Code></Error></Errors></Response>`))

	var body atomic.Pointer[[]byte]
	var status, calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(int(status.Load()))
		w.Write(*body.Load())
	}))
	f.Cleanup(srv.Close)
	client := ec2.New(ec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
		HTTPClient:       srv.Client(),
	})

	f.Fuzz(func(t *testing.T, code uint8, b []byte) {
		body.Store(&b)
		status.Store(int64(fuzzStatuses[int(code)%len(fuzzStatuses)]))
		calls.Store(0)

		top := topology.Fetch(context.Background(), client, "vpc-0lab", "subnet-0lab", "us-east-1")
		if top == nil {
			t.Fatal("Fetch returned nil")
		}
		for _, p := range top.Problems {
			if p.Call == "" || p.Message == "" && p.Code == "" {
				t.Errorf("problem %+v says neither which call nor what", p)
			}
		}
		lists := 0
		if rt := top.RouteTable; rt != nil {
			for _, r := range rt.Routes {
				if r.Destination.IsValid() == (r.PrefixListID != "") {
					t.Errorf("route %+v: want exactly one of a CIDR and a prefix list", r)
				}
				if r.PrefixListID != "" {
					lists++
				}
			}
		}
		for id, pl := range top.PrefixLists {
			if pl.ID != id {
				t.Errorf("prefix list %s filed under %s", pl.ID, id)
			}
			for _, c := range pl.CIDRs {
				if !c.IsValid() {
					t.Errorf("prefix list %s: invalid CIDR", id)
				}
			}
		}
		if n := int(calls.Load()); n > maxFuzzCalls(lists) {
			t.Errorf("%d EC2 calls for one fetch naming %d lists", n, lists)
		}
	})
}

// fuzzBodies are answers of the shapes EC2 gives. Each call's decoder
// reads the fields it knows from whatever document comes, so the last one
// answers every call at once.
var fuzzBodies = []string{
	`<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
		`<requestId>1</requestId><routeTableSet><item><routeTableId>rtb-1</routeTableId>` +
		`<associationSet><item><main>true</main></item></associationSet>` +
		`<routeSet><item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId></item>` +
		`<item><destinationPrefixListId>pl-63a5400a</destinationPrefixListId><gatewayId>vpce-1</gatewayId></item>` +
		`<item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><natGatewayId>nat-1</natGatewayId><state>blackhole</state></item>` +
		`</routeSet></item></routeTableSet></DescribeRouteTablesResponse>`,
	`<DescribeVpcEndpointsResponse><vpcEndpointSet><item><vpcEndpointId>vpce-1</vpcEndpointId>` +
		`<vpcEndpointType>Interface</vpcEndpointType><state>available</state>` +
		`<dnsEntrySet><item><dnsName>*.vpce-1.s3.us-east-1.vpce.amazonaws.com</dnsName></item></dnsEntrySet>` +
		`</item></vpcEndpointSet></DescribeVpcEndpointsResponse>`,
	`<GetManagedPrefixListEntriesResponse><entrySet><item><cidr>52.216.0.0/15</cidr></item>` +
		`<item><cidr>not-a-cidr</cidr></item></entrySet><nextToken>more</nextToken></GetManagedPrefixListEntriesResponse>`,
	`<R><routeTableSet><item><routeTableId>rtb-2</routeTableId><routeSet>` +
		`<item><destinationPrefixListId>pl-1</destinationPrefixListId></item>` +
		`<item><destinationIpv6CidrBlock>::/0</destinationIpv6CidrBlock><egressOnlyInternetGatewayId>eigw-1</egressOnlyInternetGatewayId></item>` +
		`<item><destinationCidrBlock>10.0.0.0/33</destinationCidrBlock></item></routeSet></item></routeTableSet>` +
		`<vpcEndpointSet><item><vpcEndpointId>vpce-2</vpcEndpointId><vpcEndpointType>Gateway</vpcEndpointType></item></vpcEndpointSet>` +
		`<prefixListSet><item><prefixListId>pl-1</prefixListId><prefixListName>com.amazonaws.us-east-1.s3</prefixListName>` +
		`<cidrSet><item>3.5.0.0/19</item></cidrSet></item></prefixListSet>` +
		`<entrySet><item><cidr>3.5.0.0/19</cidr></item></entrySet></R>`,
}
