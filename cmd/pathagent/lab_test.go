package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/labtest"
	"github.com/pathagent/pathagent/internal/lab/scenario"
	"github.com/pathagent/pathagent/internal/report"
)

// TestScenarios runs `pathagent once --json` against every shipped lab
// scenario and checks the path each bucket took, the probes' outcomes and
// the findings, through the real IMDS mock, EC2 Query server, DNS server and
// versitygw.
func TestScenarios(t *testing.T) {
	tests := []struct {
		scenario string

		wantStatus report.Status
		wantPaths  map[string]string // bucket -> "kind target route-table"

		// wantFindings are the finding codes, besides the lab's own
		// long_lived_credentials (it signs with static keys); no other
		// finding may appear.
		wantFindings []string

		// wantProbesOK: every probe of every bucket succeeded.
		wantProbesOK bool
	}{
		{
			scenario:     "gateway-endpoint",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "gateway_endpoint vpce-0gw0000000000001 rtb-0private00000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "public-internet-gateway",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "internet_gateway igw-0lab00000000001 rtb-0public000000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "private-nat-gateway",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"nat_gateway_same_region"},
			wantProbesOK: true,
		},
		{
			scenario:     "endpoint-not-associated",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"gateway_endpoint_not_associated", "nat_gateway_same_region"},
			wantProbesOK: true,
		},
		{
			scenario:     "main-table-implicit",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "gateway_endpoint vpce-0gw0000000000001 rtb-0main00000000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "interface-endpoint",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "interface_endpoint vpce-0if0000000000001 rtb-0private00000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "specific-route-override",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"route_overrides_endpoint", "nat_gateway_same_region"},
			wantProbesOK: true,
		},
		{
			scenario:     "blackhole-route",
			wantStatus:   report.Failed,
			wantPaths:    map[string]string{"lab-data": "blackhole nat-0deleted000000001 rtb-0private00000001"},
			wantFindings: []string{"blackhole_route", "probe_failed"},
		},
		{
			scenario:     "dns-hijacked",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"dns_unexpected_address"},
			wantProbesOK: true,
		},
		{
			scenario:     "dns-nxdomain",
			wantStatus:   report.Failed,
			wantPaths:    map[string]string{"lab-data": "unknown  "},
			wantFindings: []string{"dns_failed", "probe_failed"},
		},
		{
			scenario:     "interface-endpoint-private-dns-off",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"interface_endpoint_private_dns_off", "nat_gateway_same_region"},
			wantProbesOK: true,
		},
		{
			scenario:     "proxy-in-the-way",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "proxy 127.16.1.99:PORT "},
			wantFindings: []string{"proxy_in_use"},
			wantProbesOK: true,
		},
		{
			scenario:     "endpoint-pending",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "nat_gateway nat-0lab00000000001 rtb-0private00000001"},
			wantFindings: []string{"endpoint_not_available", "nat_gateway_same_region"},
			wantProbesOK: true,
		},
		// The four stages of adding a gateway endpoint and a bucket
		// policy that demands it.
		{
			scenario:     "walkthrough-1-no-endpoint",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "internet_gateway igw-0lab00000000001 rtb-0public000000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "walkthrough-2-policy-denies",
			wantStatus:   report.Failed,
			wantPaths:    map[string]string{"lab-data": "internet_gateway igw-0lab00000000001 rtb-0public000000001"},
			wantFindings: []string{"gateway_endpoint_not_associated", "bucket_policy_requires_endpoint", "probe_failed"},
		},
		{
			scenario:     "walkthrough-3-associated",
			wantStatus:   report.OK,
			wantPaths:    map[string]string{"lab-data": "gateway_endpoint vpce-0gw0000000000001 rtb-0public000000001"},
			wantProbesOK: true,
		},
		{
			scenario:     "walkthrough-4-endpoint-policy-denies",
			wantStatus:   report.Failed,
			wantPaths:    map[string]string{"lab-data": "gateway_endpoint vpce-0gw0000000000001 rtb-0public000000001"},
			wantFindings: []string{"endpoint_policy_denies", "probe_failed"},
		},
		{
			scenario:     "credentials-rejected",
			wantStatus:   report.Failed,
			wantPaths:    map[string]string{"lab-data": "unknown  "},
			wantFindings: []string{"credentials_rejected", "ec2_call_failed", "path_unknown", "probe_failed"},
		},
		{
			scenario:   "bucket-other-region",
			wantStatus: report.OK,
			wantPaths: map[string]string{
				"lab-data":       "gateway_endpoint vpce-0gw0000000000001 rtb-0private00000001",
				"lab-eu-archive": "nat_gateway nat-0lab00000000001 rtb-0private00000001",
			},
			wantFindings: []string{"bucket_in_other_region"},
			wantProbesOK: true,
		},
	}

	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			l, s := startLab(t, tt.scenario)
			before := objects(t, l, s)

			var stdout, stderr bytes.Buffer
			code := run([]string{"once", "--json"}, &stdout, &stderr)

			var rep report.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\n%s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			if rep.Status != tt.wantStatus || code != tt.wantStatus.ExitCode() {
				t.Errorf("status %s, exit %d; want %s, exit %d\n%s",
					rep.Status, code, tt.wantStatus, tt.wantStatus.ExitCode(), stdout.String())
			}
			if rep.Schema != report.Schema {
				t.Errorf("schema %q, want %q", rep.Schema, report.Schema)
			}
			if rep.Identity == nil || rep.Identity.InstanceID != s.Instance.ID {
				t.Errorf("identity %+v, want instance %s", rep.Identity, s.Instance.ID)
			}

			got := map[string]string{}
			for _, b := range rep.Buckets {
				got[b.Name] = strings.Join([]string{b.Path.Kind, b.Path.Target, b.Path.RouteTableID}, " ")
				checkProbes(t, b, tt.wantProbesOK)
			}
			for bucket, want := range tt.wantPaths {
				if l.Proxy != nil {
					_, port, _ := strings.Cut(strings.TrimPrefix(l.Proxy.URL(), "http://"), ":")
					want = strings.ReplaceAll(want, "PORT", port)
				}
				if got[bucket] != want {
					t.Errorf("bucket %s: path %q, want %q", bucket, got[bucket], want)
				}
			}

			var codes []string
			for _, f := range rep.Findings {
				if !slices.Contains(codes, f.Code) {
					codes = append(codes, f.Code)
				}
			}
			want := append([]string{"long_lived_credentials"}, tt.wantFindings...)
			slices.Sort(codes)
			slices.Sort(want)
			if !slices.Equal(codes, want) {
				t.Errorf("finding codes %v, want %v\n%+v", codes, want, rep.Findings)
			}

			// Probes leave every bucket as they found it.
			if after := objects(t, l, s); !equalMaps(before, after) {
				t.Errorf("bucket contents changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestTextReport checks that the readable report names the path and each
// probe, as a person reads it.
func TestTextReport(t *testing.T) {
	startLab(t, "endpoint-not-associated")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"once"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"instance     i-0a1b2c3d4e5f60718 in us-east-1a (us-east-1)",
		"path  nat_gateway nat-0lab00000000001, route 0.0.0.0/0 in rtb-0private00000001",
		"list    ok",
		"delete  ok",
		"route table rtb-0private00000001 is not associated with it",
		"fix: aws ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-0gw0000000000001 --add-route-table-ids rtb-0private00000001",
		"status: ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestBadConfig checks that a configuration error stops the agent before it
// does anything, with exit code 2 and the file, line and key.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("buckets:\n  - name: ok-bucket\n    colour: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := run([]string{"once", "--config", path}, &stdout, &stderr)

	want := path + ":3: buckets[0].colour: unknown key"
	if code != 2 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), want)
	}
}

func checkProbes(t *testing.T, b report.Bucket, wantOK bool) {
	t.Helper()
	ops := []string{}
	for _, p := range b.Probes {
		ops = append(ops, p.Op)
		if wantOK && !p.Success {
			t.Errorf("bucket %s: %s failed: %s %s", b.Name, p.Op, p.ErrorCode, p.Error)
		}
		if p.Success && p.Remote == "" {
			t.Errorf("bucket %s: %s succeeded with no remote address", b.Name, p.Op)
		}
	}
	if got := strings.Join(ops, ","); got != "list,put,get,delete" {
		t.Errorf("bucket %s: probes %s, want list,put,get,delete", b.Name, got)
	}
}

// startLab starts a scenario's lab and points this process's environment at
// it, as `pathagent-lab run` does for a child.
func startLab(t *testing.T, name string) (*lab.Lab, *scenario.Scenario) {
	t.Helper()
	s := labtest.Scenario(t, name)
	l := labtest.Start(t, s)
	labtest.UseEnv(t, l)

	// The agent must work with a CA bundle set, as it may be on an
	// instance; the SDK then needs its own kind of HTTP client.
	t.Setenv("AWS_CA_BUNDLE", labtest.WriteCA(t))
	return l, s
}

func objects(t *testing.T, l *lab.Lab, s *scenario.Scenario) map[string]int64 {
	t.Helper()
	all := map[string]int64{}
	for _, b := range s.Buckets {
		objs, err := l.S3.ListObjects(context.Background(), b.Name)
		if err != nil {
			t.Fatal(err)
		}
		for k, size := range objs {
			all[b.Name+"/"+k] = size
		}
	}
	return all
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
