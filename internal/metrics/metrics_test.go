package metrics

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/pathagent/pathagent/internal/report"
)

func bucket(name, kind, target string, probes ...report.Probe) report.Bucket {
	return report.Bucket{
		Name:   name,
		Region: "us-east-1",
		Path:   report.Path{Kind: kind, Target: target, RouteTableID: "rtb-1"},
		Probes: probes,
	}
}

var allOK = []report.Probe{
	{Op: "list", Success: true, LatencyS: 0.01},
	{Op: "put", Success: true, LatencyS: 0.02},
	{Op: "get", Success: true, LatencyS: 0.01},
	{Op: "delete", Success: true, LatencyS: 0.01},
}

var putDenied = []report.Probe{
	{Op: "list", Success: true, LatencyS: 0.01},
	{Op: "put", Reason: "access_denied", LatencyS: 0.02},
	{Op: "get", Skipped: true},
	{Op: "delete", Skipped: true},
}

func TestObserveCycle(t *testing.T) {
	m := New(BuildInfo{Version: "1.2.3", Revision: "abc"})

	// Cycle 1: all good through the endpoint.
	b := bucket("data", "gateway_endpoint", "vpce-1", allOK...)
	b.ExpectPath = "gateway_endpoint"
	m.ObserveCycle(&report.Report{Buckets: []report.Bucket{b}}, time.Second)

	// Cycle 2: the path moved to NAT and the put is denied.
	b = bucket("data", "nat_gateway", "nat-1", putDenied...)
	b.ExpectPath = "gateway_endpoint"
	m.ObserveCycle(&report.Report{
		Buckets: []report.Bucket{b},
		Findings: []report.Finding{
			{Code: "nat_gateway_same_region", Severity: report.Warning, Bucket: "data"},
		},
	}, time.Second)

	want := `
# HELP pathagent_bucket_failure_reason The reason of the last cycle's first failed probe; absent when reachable.
# TYPE pathagent_bucket_failure_reason gauge
pathagent_bucket_failure_reason{bucket="data",reason="access_denied"} 1
# HELP pathagent_bucket_reachable Whether every probe of the bucket's last cycle succeeded.
# TYPE pathagent_bucket_reachable gauge
pathagent_bucket_reachable{bucket="data"} 0
# HELP pathagent_finding A finding of the last cycle; always 1.
# TYPE pathagent_finding gauge
pathagent_finding{bucket="data",code="nat_gateway_same_region",finding_severity="warning"} 1
# HELP pathagent_path_changes_total Times the bucket's path kind or target changed.
# TYPE pathagent_path_changes_total counter
pathagent_path_changes_total{bucket="data"} 1
# HELP pathagent_path_expected Whether the bucket's path is of its configured expected kind.
# TYPE pathagent_path_expected gauge
pathagent_path_expected{bucket="data",expected="gateway_endpoint"} 0
# HELP pathagent_path_info The path the bucket's traffic takes; always 1.
# TYPE pathagent_path_info gauge
pathagent_path_info{bucket="data",kind="nat_gateway",route_table="rtb-1",target="nat-1"} 1
# HELP pathagent_probe_failures_total Failed probes, by reason.
# TYPE pathagent_probe_failures_total counter
pathagent_probe_failures_total{bucket="data",op="put",reason="access_denied"} 1
# HELP pathagent_probe_success Whether the last probe of the operation succeeded (1) or failed (0).
# TYPE pathagent_probe_success gauge
pathagent_probe_success{bucket="data",op="list"} 1
pathagent_probe_success{bucket="data",op="put"} 0
# HELP pathagent_probes_total Probes sent.
# TYPE pathagent_probes_total counter
pathagent_probes_total{bucket="data",op="delete"} 1
pathagent_probes_total{bucket="data",op="get"} 1
pathagent_probes_total{bucket="data",op="list"} 2
pathagent_probes_total{bucket="data",op="put"} 2
`
	// get and delete were skipped: their success is unknown, so their
	// series are gone rather than 0.
	err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"pathagent_bucket_failure_reason", "pathagent_bucket_reachable",
		"pathagent_finding", "pathagent_path_changes_total", "pathagent_path_expected",
		"pathagent_path_info", "pathagent_probe_failures_total", "pathagent_probe_success",
		"pathagent_probes_total")
	if err != nil {
		t.Error(err)
	}

	// Cycle 3: the bucket is gone from the configuration; another came.
	m.ObserveCycle(&report.Report{Buckets: []report.Bucket{bucket("logs", "gateway_endpoint", "vpce-1", allOK...)}}, time.Second)
	for _, name := range []string{"pathagent_path_info", "pathagent_probe_success", "pathagent_bucket_failure_reason", "pathagent_finding"} {
		out := gatherText(t, m, name)
		if strings.Contains(out, `bucket="data"`) {
			t.Errorf("%s still has series for the removed bucket:\n%s", name, out)
		}
	}
}

func TestTopologyAge(t *testing.T) {
	m := New(BuildInfo{})
	if out := gatherText(t, m, "pathagent_topology_age_seconds"); !strings.Contains(out, "NaN") {
		t.Errorf("age before any read = %q, want NaN", out)
	}

	m.TopologyRefreshed(time.Now().Add(-time.Minute), nil)
	m.TopologyRefreshed(time.Now(), []CallError{{Call: "DescribeVpcEndpoints", Reason: "unauthorized"}})

	// The failed read does not make the topology fresher.
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pathagent_topology_age_seconds" {
			if age := mf.GetMetric()[0].GetGauge().GetValue(); age < 59 || age > 120 {
				t.Errorf("age = %v, want about 60", age)
			}
		}
	}
	want := `
# HELP pathagent_topology_refresh_errors_total Failed EC2 calls, by call and reason.
# TYPE pathagent_topology_refresh_errors_total counter
pathagent_topology_refresh_errors_total{call="DescribeVpcEndpoints",reason="unauthorized"} 1
# HELP pathagent_topology_refreshes_total Reads of the route table, endpoints and prefix lists, by result.
# TYPE pathagent_topology_refreshes_total counter
pathagent_topology_refreshes_total{result="error"} 1
pathagent_topology_refreshes_total{result="success"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"pathagent_topology_refresh_errors_total", "pathagent_topology_refreshes_total"); err != nil {
		t.Error(err)
	}
}

// promtool, Prometheus's own linter, finds nothing wrong with the
// exposition: names, units, suffixes, help texts.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: run `make test`, which installs Debian's prometheus package")
	}

	m := New(BuildInfo{Version: "1.2.3", Revision: "abc"})
	m.ObserveCycle(&report.Report{
		Buckets:  []report.Bucket{bucket("data", "nat_gateway", "nat-1", putDenied...)},
		Findings: []report.Finding{{Code: "nat_gateway_same_region", Severity: report.Warning, Bucket: "data"}},
	}, time.Second)
	m.CycleSkipped()
	m.TopologyRefreshed(time.Now(), []CallError{{Call: "DescribeRouteTables", Reason: "throttled"}})
	m.EC2Call("DescribeRouteTables")
	m.IMDSError("no_token")
	m.ConfigLoaded(true)

	var buf bytes.Buffer
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func gatherText(t *testing.T, m *Metrics, name string) string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if mf.GetName() == name {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.String()
}
