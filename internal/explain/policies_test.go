package explain

import (
	"strings"
	"testing"

	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/route"
	"github.com/pathagent/pathagent/internal/topology"
)

const demandEndpoint = `{"Version":"2012-10-17","Statement":[{"Sid":"DenyOutsideEndpoint","Effect":"Deny",
"Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
"Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-gw"}}}]}`

const allowOfficeIPs = `{"Version":"2012-10-17","Statement":[{"Sid":"OfficeOnly","Effect":"Deny",
"Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
"Condition":{"NotIpAddress":{"aws:SourceIp":"198.51.100.0/24"}}}]}`

const otherBucketOnly = `{"Statement":[{"Sid":"OnlyReports","Effect":"Allow","Principal":"*",
"Action":"s3:*","Resource":"arn:aws:s3:::reports/*"}]}`

func TestPolicyFindings(t *testing.T) {
	gw := topology.Endpoint{ID: "vpce-gw", Type: topology.Gateway, State: "available",
		ServiceName: "com.amazonaws.us-east-1.s3"}
	narrowed := gw
	narrowed.RouteTableIDs = []string{"rtb-1"}
	narrowed.PolicyDocument = otherBucketOnly

	igw := route.Path{Kind: route.InternetGateway, Target: "igw-1", RouteTableID: "rtb-1"}
	nat := route.Path{Kind: route.NATGateway, Target: "nat-1", RouteTableID: "rtb-1"}
	viaEndpoint := route.Path{Kind: route.GatewayEndpoint, Target: "vpce-gw", RouteTableID: "rtb-1"}
	listDenied := probes.Result{Op: probes.List, FailedIn: probes.PhaseRequest, Code: "AccessDenied", HTTPStatus: 403}

	tests := []struct {
		name     string
		endpoint topology.Endpoint
		path     route.Path
		policy   string
		readErr  string

		want        string
		wantSummary []string
		wantFix     string
	}{
		{
			name:        "policy demands the endpoint, route table not associated",
			endpoint:    gw,
			path:        igw,
			policy:      demandEndpoint,
			want:        CodeBucketPolicyNeedsEndpoint,
			wantSummary: []string{"internet_gateway igw-1", `"DenyOutsideEndpoint"`, "aws:SourceVpce is absent"},
			wantFix:     "aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-gw --add-route-table-ids rtb-1",
		},
		{
			name:        "endpoint policy allows another bucket only",
			endpoint:    narrowed,
			path:        viaEndpoint,
			policy:      demandEndpoint,
			want:        CodeEndpointPolicyDenies,
			wantSummary: []string{"vpce-gw", "s3:ListBucket", "implicit deny"},
			wantFix:     "arn:aws:s3:::b/*",
		},
		{
			// Through NAT, S3 sees the NAT gateway's address, which the
			// agent does not know: it must not guess.
			name:        "source address unknown behind NAT",
			endpoint:    gw,
			path:        nat,
			policy:      allowOfficeIPs,
			want:        CodePolicyUndetermined,
			wantSummary: []string{"aws:SourceIp"},
		},
		{
			name:        "policy unreadable",
			endpoint:    gw,
			path:        igw,
			readErr:     "AccessDenied",
			want:        CodeBucketPolicyUnreadable,
			wantSummary: []string{"AccessDenied"},
			wantFix:     "s3:GetBucketPolicy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := &topology.Topology{
				RouteTable: &topology.RouteTable{ID: "rtb-1"},
				Endpoints:  []topology.Endpoint{tt.endpoint},
			}
			br := probes.BucketResult{
				Bucket: "b", Region: "us-east-1",
				Probes:      []probes.Result{listDenied},
				Policy:      tt.policy,
				PolicyRead:  tt.readErr == "",
				PolicyError: tt.readErr,
			}
			fs := Findings(Input{Region: "us-east-1", Topology: top, VPCID: "vpc-1",
				PrivateIP: "10.0.1.5", PublicIPs: []string{"203.0.113.7"},
				Buckets: []Bucket{{Result: br, Path: tt.path}}})

			var codes []string
			for _, f := range fs {
				codes = append(codes, f.Code)
				if f.Code != tt.want {
					continue
				}
				for _, w := range tt.wantSummary {
					if !strings.Contains(f.Summary, w) {
						t.Errorf("summary %q lacks %q", f.Summary, w)
					}
				}
				if !strings.Contains(f.Fix, tt.wantFix) {
					t.Errorf("fix %q lacks %q", f.Fix, tt.wantFix)
				}
				return
			}
			t.Errorf("no %s finding; codes %v", tt.want, codes)
		})
	}
}

// A denial the policies explain is not also reported as an unexplained
// access_denied.
func TestExplainedDenialNotRepeated(t *testing.T) {
	top := &topology.Topology{
		RouteTable: &topology.RouteTable{ID: "rtb-1"},
		Endpoints: []topology.Endpoint{{ID: "vpce-gw", Type: topology.Gateway, State: "available",
			ServiceName: "com.amazonaws.us-east-1.s3"}},
	}
	br := probes.BucketResult{Bucket: "b", Region: "us-east-1", PolicyRead: true, Policy: demandEndpoint,
		Probes: []probes.Result{{Op: probes.List, FailedIn: probes.PhaseRequest, Code: "AccessDenied", HTTPStatus: 403}}}
	fs := Findings(Input{Region: "us-east-1", Topology: top, Buckets: []Bucket{{
		Result: br, Path: route.Path{Kind: route.InternetGateway, Target: "igw-1", RouteTableID: "rtb-1"}}}})
	for _, f := range fs {
		if f.Code == CodeAccessDenied {
			t.Errorf("unexplained access_denied reported beside the policy finding: %+v", fs)
		}
	}
}
