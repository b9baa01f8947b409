package topology_test

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/pathagent/pathagent/internal/lab/ec2api"
	"github.com/pathagent/pathagent/internal/lab/scenario"
	"github.com/pathagent/pathagent/internal/topology"
)

const (
	scenarioFile = "../../lab/scenarios/gateway-endpoint.yaml"

	testKey    = "AKIDLABTEST00000001"
	testSecret = "lab-secret-for-tests"

	vpcID    = "vpc-0lab0000000000001"
	subnetID = "subnet-0lab000000000001"
	region   = "us-east-1"

	deniedMessage    = "You are not authorized to perform this operation."
	fullAccessPolicy = `{"Version":"2008-10-17","Statement":[` +
		`{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`
)

var fetchedAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// gatewayTopology is what Fetch should read from the unedited
// gateway-endpoint scenario.
func gatewayTopology() topology.Topology {
	return topology.Topology{
		RouteTable: &topology.RouteTable{
			ID: "rtb-0private00000001",
			Routes: []topology.Route{
				{
					Destination: netip.MustParsePrefix("127.16.0.0/16"),
					Target:      "local",
					Origin:      "CreateRouteTable",
				},
				{
					Destination: netip.MustParsePrefix("0.0.0.0/0"),
					Target:      "nat-0lab00000000001",
					Origin:      "CreateRoute",
				},
				{
					PrefixListID: "pl-63a5400a",
					Target:       "vpce-0gw0000000000001",
					Origin:       "CreateRoute",
				},
			},
		},
		Endpoints: []topology.Endpoint{{
			ID:             "vpce-0gw0000000000001",
			Type:           topology.Gateway,
			ServiceName:    "com.amazonaws.us-east-1.s3",
			State:          "available",
			RouteTableIDs:  []string{"rtb-0private00000001"},
			PolicyDocument: fullAccessPolicy,
		}},
		S3PrefixListID: "pl-63a5400a",
		PrefixLists: map[string]topology.PrefixList{
			"pl-63a5400a": {
				ID:    "pl-63a5400a",
				Name:  "com.amazonaws.us-east-1.s3",
				CIDRs: prefixes("127.52.216.0/22", "127.54.231.0/24"),
			},
		},
		FetchedAt: fetchedAt,
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// addDynamoDB gives the subnet's table a second gateway endpoint route,
// so that the prefix list calls have two lists to read.
func addDynamoDB(sc *scenario.Scenario) {
	sc.PrefixLists = append(sc.PrefixLists, scenario.PrefixList{
		ID:    "pl-02cd2c6b",
		Name:  "com.amazonaws.us-east-1.dynamodb",
		CIDRs: []string{"127.34.0.0/16"},
	})
	rt := &sc.RouteTables[1]
	rt.Routes = append(rt.Routes, scenario.Route{
		PrefixList: "pl-02cd2c6b",
		Target:     "vpce-0ddb000000000001",
	})
}

func TestFetch(t *testing.T) {
	// The calls a fetch of the unedited scenario makes: one of each
	// read, no more.
	standardCalls := map[string]int{
		"DescribeRouteTables":         1,
		"DescribeVpcEndpoints":        1,
		"DescribeManagedPrefixLists":  1,
		"GetManagedPrefixListEntries": 1,
	}

	tests := []struct {
		name     string
		edit     func(*scenario.Scenario) // changes the lab's world
		deny     []string                 // actions the lab refuses
		secret   string                   // the agent's secret; testSecret if empty
		pageSize int32

		// want edits gatewayTopology into the expected result.
		want      func(*topology.Topology)
		wantCalls map[string]int
	}{
		{
			name:      "explicit association",
			want:      func(*topology.Topology) {},
			wantCalls: standardCalls,
		},
		{
			// The second DescribeRouteTables finds the main table. Its
			// routes name no prefix list, so the S3 list is read by name.
			name: "implicit main table",
			edit: func(sc *scenario.Scenario) { sc.RouteTables[1].Subnets = nil },
			want: func(w *topology.Topology) {
				w.RouteTable = &topology.RouteTable{
					ID:       "rtb-0main00000000001",
					Main:     true,
					Implicit: true,
					Routes: []topology.Route{{
						Destination: netip.MustParsePrefix("127.16.0.0/16"),
						Target:      "local",
						Origin:      "CreateRouteTable",
					}},
				}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":         2,
				"DescribeVpcEndpoints":        1,
				"DescribeManagedPrefixLists":  1,
				"GetManagedPrefixListEntries": 1,
			},
		},
		{
			name: "blackhole route and other targets",
			edit: func(sc *scenario.Scenario) {
				rt := &sc.RouteTables[1]
				rt.Routes[1].State = "blackhole"
				rt.Routes = append(rt.Routes,
					scenario.Route{Destination: "::/0", Target: "eigw-0lab00000000001"},
					scenario.Route{Destination: "127.200.0.0/16", Target: "tgw-0lab00000000001"},
					scenario.Route{
						Destination: "127.201.0.0/16",
						Target:      "vgw-0lab00000000001",
						Origin:      "EnableVgwRoutePropagation",
					},
				)
			},
			want: func(w *topology.Topology) {
				r := w.RouteTable.Routes
				r[1].Blackhole = true
				w.RouteTable.Routes = append(r,
					topology.Route{
						Destination: netip.MustParsePrefix("::/0"),
						Target:      "eigw-0lab00000000001",
						Origin:      "CreateRoute",
					},
					topology.Route{
						Destination: netip.MustParsePrefix("127.200.0.0/16"),
						Target:      "tgw-0lab00000000001",
						Origin:      "CreateRoute",
					},
					topology.Route{
						Destination: netip.MustParsePrefix("127.201.0.0/16"),
						Target:      "vgw-0lab00000000001",
						Origin:      "EnableVgwRoutePropagation",
					},
				)
			},
			wantCalls: standardCalls,
		},
		{
			// Five entries in pages of two: three calls, none repeated.
			name: "prefix list entries in pages",
			edit: func(sc *scenario.Scenario) {
				pl := &sc.PrefixLists[0]
				pl.CIDRs = append(pl.CIDRs, "127.3.5.0/24", "127.16.0.0/15", "127.18.0.0/15")
			},
			pageSize: 2,
			want: func(w *topology.Topology) {
				w.PrefixLists["pl-63a5400a"] = topology.PrefixList{
					ID:   "pl-63a5400a",
					Name: "com.amazonaws.us-east-1.s3",
					CIDRs: prefixes("127.52.216.0/22", "127.54.231.0/24",
						"127.3.5.0/24", "127.16.0.0/15", "127.18.0.0/15"),
				}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":         1,
				"DescribeVpcEndpoints":        1,
				"DescribeManagedPrefixLists":  1,
				"GetManagedPrefixListEntries": 3,
			},
		},
		{
			// Both types and every state are listed; other services are
			// not.
			name: "interface endpoint and other services",
			edit: func(sc *scenario.Scenario) {
				sc.Endpoints = append(sc.Endpoints,
					scenario.Endpoint{
						ID:         "vpce-0if0000000000001",
						Type:       "Interface",
						Service:    "com.amazonaws.us-east-1.s3",
						State:      "pending",
						PrivateDNS: true,
						DNSNames:   []string{"*.vpce-0if0000000000001-abcd.s3.us-east-1.vpce.amazonaws.com"},
						Subnets:    []string{subnetID},
					},
					scenario.Endpoint{
						ID:      "vpce-0ddb000000000001",
						Type:    "Gateway",
						Service: "com.amazonaws.us-east-1.dynamodb",
					},
				)
			},
			want: func(w *topology.Topology) {
				w.Endpoints = append(w.Endpoints, topology.Endpoint{
					ID:             "vpce-0if0000000000001",
					Type:           topology.Interface,
					ServiceName:    "com.amazonaws.us-east-1.s3",
					State:          "pending",
					PolicyDocument: fullAccessPolicy,
					PrivateDNS:     true,
					DNSNames:       []string{"*.vpce-0if0000000000001-abcd.s3.us-east-1.vpce.amazonaws.com"},
					SubnetIDs:      []string{subnetID},
				})
			},
			wantCalls: standardCalls,
		},
		{
			name: "endpoints denied",
			deny: []string{"DescribeVpcEndpoints"},
			want: func(w *topology.Topology) {
				w.Endpoints = nil
				w.Problems = []topology.Problem{{
					Call:    "DescribeVpcEndpoints",
					Code:    "UnauthorizedOperation",
					Message: deniedMessage,
				}}
			},
			wantCalls: standardCalls,
		},
		{
			// Without a route table there is no prefix list to read.
			name: "route tables denied",
			deny: []string{"DescribeRouteTables"},
			want: func(w *topology.Topology) {
				w.RouteTable = nil
				w.PrefixLists = nil
				w.S3PrefixListID = ""
				w.Problems = []topology.Problem{{
					Call:    "DescribeRouteTables",
					Code:    "UnauthorizedOperation",
					Message: deniedMessage,
				}}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":  1,
				"DescribeVpcEndpoints": 1,
			},
		},
		{
			// The first denial ends GetManagedPrefixListEntries; one
			// DescribePrefixLists reads both lists.
			name: "entries denied, older call used",
			edit: addDynamoDB,
			deny: []string{"GetManagedPrefixListEntries"},
			want: func(w *topology.Topology) {
				w.RouteTable.Routes = append(w.RouteTable.Routes, topology.Route{
					PrefixListID: "pl-02cd2c6b",
					Target:       "vpce-0ddb000000000001",
					Origin:       "CreateRoute",
				})
				w.PrefixLists["pl-02cd2c6b"] = topology.PrefixList{
					ID:    "pl-02cd2c6b",
					Name:  "com.amazonaws.us-east-1.dynamodb",
					CIDRs: prefixes("127.34.0.0/16"),
				}
				w.Problems = []topology.Problem{{
					Call:    "GetManagedPrefixListEntries",
					Code:    "UnauthorizedOperation",
					Message: deniedMessage,
				}}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":         1,
				"DescribeVpcEndpoints":        1,
				"DescribeManagedPrefixLists":  1,
				"GetManagedPrefixListEntries": 1,
				"DescribePrefixLists":         1,
			},
		},
		{
			name: "both entry calls denied",
			deny: []string{"GetManagedPrefixListEntries", "DescribePrefixLists"},
			want: func(w *topology.Topology) {
				w.PrefixLists = map[string]topology.PrefixList{}
				w.S3PrefixListID = ""
				w.Problems = []topology.Problem{
					{Call: "GetManagedPrefixListEntries", Code: "UnauthorizedOperation", Message: deniedMessage},
					{Call: "DescribePrefixLists", Code: "UnauthorizedOperation", Message: deniedMessage},
				}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":         1,
				"DescribeVpcEndpoints":        1,
				"DescribeManagedPrefixLists":  1,
				"GetManagedPrefixListEntries": 1,
				"DescribePrefixLists":         1,
			},
		},
		{
			// The entries are still read; only the name is missing.
			name: "names denied",
			deny: []string{"DescribeManagedPrefixLists"},
			want: func(w *topology.Topology) {
				pl := w.PrefixLists["pl-63a5400a"]
				pl.Name = ""
				w.PrefixLists["pl-63a5400a"] = pl
				// Without names, nothing says which list is S3's.
				w.S3PrefixListID = ""
				w.Problems = []topology.Problem{{
					Call:    "DescribeManagedPrefixLists",
					Code:    "UnauthorizedOperation",
					Message: deniedMessage,
				}}
			},
			wantCalls: standardCalls,
		},
		{
			// Every call fails alike; the SDK does not retry them.
			name:   "wrong secret",
			secret: "not-the-secret",
			want: func(w *topology.Topology) {
				w.RouteTable = nil
				w.Endpoints = nil
				w.PrefixLists = nil
				w.S3PrefixListID = ""
				const msg = "the request signature does not match"
				w.Problems = []topology.Problem{
					{Call: "DescribeRouteTables", Code: "AuthFailure", Message: msg},
					{Call: "DescribeVpcEndpoints", Code: "AuthFailure", Message: msg},
				}
			},
			wantCalls: map[string]int{
				"DescribeRouteTables":  1,
				"DescribeVpcEndpoints": 1,
			},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenario.Load(scenarioFile)
			if err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				tt.edit(sc)
			}
			srv := ec2api.New(sc, aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret})
			srv.SetDeny(tt.deny...)
			ts := httptest.NewServer(srv)
			defer ts.Close()

			secret := tt.secret
			if secret == "" {
				secret = testSecret
			}
			// The client keeps the SDK's default retryer, so the call
			// counts show any retry it would make.
			client := ec2.New(ec2.Options{
				Region:       region,
				BaseEndpoint: aws.String(ts.URL),
				Credentials:  credentials.NewStaticCredentialsProvider(testKey, secret, ""),
				HTTPClient:   ts.Client(),
			})
			f := &topology.Fetcher{
				API:      client,
				PageSize: tt.pageSize,
				Now:      func() time.Time { return fetchedAt },
			}

			got := f.Fetch(context.Background(), vpcID, subnetID, region)

			want := gatewayTopology()
			tt.want(&want)
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("topology =\n%+v\nwant\n%+v", *got, want)
			}
			if calls := srv.Calls(); !reflect.DeepEqual(calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", calls, tt.wantCalls)
			}
		})
	}
}

// TestFetchDefaults checks the package-level Fetch against the lab: it
// reads the same topology with the default page size.
func TestFetchDefaults(t *testing.T) {
	sc, err := scenario.Load(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := ec2api.New(sc, aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	client := ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(testKey, testSecret, ""),
		HTTPClient:   ts.Client(),
	})

	before := time.Now()
	got := topology.Fetch(context.Background(), client, vpcID, subnetID, region)

	if got.FetchedAt.Before(before) {
		t.Errorf("FetchedAt %v is before the fetch began (%v)", got.FetchedAt, before)
	}
	want := gatewayTopology()
	want.FetchedAt = got.FetchedAt
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("topology =\n%+v\nwant\n%+v", *got, want)
	}
}
