package netns

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/lab"
	vpc "github.com/pathagent/pathagent/internal/lab/netns"
	"github.com/pathagent/pathagent/internal/lab/promlab"
)

// The agent's clock in the alert test.
const (
	probeInterval = lab.LabInterval

	// topologyRefresh is the shortest the configuration allows. The
	// agent reads the route table early only when what its probes see
	// changes and its last read is older than the early-refresh gap
	// (daemon.DefaultEarlyRefreshGap, 10m, not configurable): in a run
	// this short a route change shows at the next scheduled read, a bucket
	// policy that tells the paths apart or not.
	topologyRefresh = time.Minute

	// blackholeCycle is how long a cycle takes on the blackhole route:
	// list and put each wait out a 5s connect timeout.
	blackholeCycle = 10 * time.Second

	// healthyWithin bounds the wait for Prometheus to see the bucket
	// reachable on its expected path: the first cycle comes within a
	// tenth of an interval, then a scrape.
	healthyWithin = 30 * time.Second
)

// late is the latest a period of d ends: the agent moves each cycle and
// topology read up to 10% either way.
func late(d time.Duration) time.Duration { return d + d/10 }

// TestAlertsInVPC runs `pathagent run` in the instance namespace, scraped
// by a real Prometheus in the router namespace that loads the shipped
// rules, time-scaled as e2e does (internal/lab/promlab). The subnet's route
// table changes under the running agent, in the EC2 API and the router's
// kernel together, and the matching alerts must fire within bounds:
//
//  1. gateway endpoint to internet gateway: pathagent_path_info moves,
//     PathagentPathChanged and PathagentUnexpectedPath (the bucket
//     expects gateway_endpoint) fire;
//  2. internet gateway to a blackhole: PathagentBucketUnreachable fires
//     with reason connect_timeout.
//
// The seconds from each change to each state the API showed are logged
// as a table.
func TestAlertsInVPC(t *testing.T) {
	requireTools(t)
	promtool, prometheus := promlab.Tools(t)
	bin := buildAgent(t)
	inLab(t, "alerts", func(t *testing.T, v *vpc.VPC, m *made) {
		alertsInVPC(t, v, m, bin, promtool, prometheus)
	})
}

func alertsInVPC(t *testing.T, v *vpc.VPC, m *made, bin, promtool, prometheus string) {
	ctx := t.Context()
	clock := newPromClock(t)
	src := filepath.Join(moduleRoot(t), "packaging", "prometheus", "pathagent-rules.yml")
	rules, fors, err := promlab.WriteScaledRules(src, t.TempDir(), promtool)
	if err != nil {
		t.Fatal(err)
	}
	pathFor := fors["PathagentUnexpectedPath"]
	if pathFor == 0 {
		t.Fatal("PathagentUnexpectedPath has no `for` in the scaled rules")
	}
	// The [10m] window of PathagentBucketUnreachable, on the lab's clock.
	window := 10 * time.Minute / time.Duration(clock.ratio)

	before, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	requireContained(t, v)
	agent := startRun(t, v, bin, agentConfig(t))
	m.pids[agent.Pid()] = "pathagent run"
	p := startPrometheus(t, v, prometheus, rules, clock)
	m.pids[p.proc.Pid()] = "prometheus"

	var steps []*step
	t.Cleanup(func() {
		t.Logf("timeline:\n%s", timeline(fmt.Sprintf(
			"pathagent netns: probe interval %s, topology refresh %s, scrape and evaluation %s,\n"+
				"shipped rules with every duration divided by %d; seconds from the world change "+
				"until Prometheus's API\n(in %s, polled every %s) showed it; metric: the agent's "+
				"series changed.",
			promDuration(t, probeInterval), promDuration(t, topologyRefresh),
			promDuration(t, clock.scrape), clock.ratio, v.Router.Name, pollEvery),
			steps))
	})

	// One scrape and one evaluation after the agent's metric changes;
	// half an interval for a loaded machine.
	lag := 2 * clock.scrape
	slack := probeInterval / 2

	healthy := &step{
		change: "agent and Prometheus started",
		metric: fmt.Sprintf(`pathagent_bucket_reachable{job="pathagent",bucket=%q} == 1`+
			` and on (job, instance, bucket) pathagent_path_expected == 1`+
			` and on (job, instance, bucket) pathagent_path_info{kind="gateway_endpoint"}`, bucket),
		bound: healthyWithin,
		why:   "first cycle, scrape",
	}
	steps = append(steps, healthy)
	healthy.watch(t, p, agent, func() error { return nil })
	if alerts, err := p.alerts(ctx); err != nil || len(alerts) > 0 {
		t.Errorf("alerts active while the bucket is healthy: %v %v", alerts, err)
	}

	// 1. Nothing makes the agent read the route table early (see
	// topologyRefresh): it sees the new one at its next read, at most
	// late(refresh) after the last, at the first cycle after that.
	// Then lag, then UnexpectedPath's `for`, which ends at an evaluation.
	igw := &step{
		change: "gateway endpoint -> internet gateway",
		metric: fmt.Sprintf(`pathagent_path_info{bucket=%q,kind="internet_gateway",target=%q}`,
			bucket, vpc.InternetGateway),
		bound: late(topologyRefresh) + late(probeInterval) + lag + pathFor + clock.scrape + slack,
		why:   "refresh+10%, interval+10%, lag, for, slack",
		alerts: []*expect{
			{name: "PathagentPathChanged", labels: map[string]string{
				"bucket": bucket, "instance": metricsAddr, "kind": "internet_gateway",
				"target": vpc.InternetGateway, "route_table": vpc.RouteTableID, "severity": "info",
			}},
			{name: "PathagentUnexpectedPath", labels: map[string]string{
				"bucket": bucket, "instance": metricsAddr, "kind": "internet_gateway",
				"expected": "gateway_endpoint", "route_table": vpc.RouteTableID, "severity": "warning",
			}},
		},
	}
	steps = append(steps, igw)
	mark := logSize(t, v.S3.AccessLog)
	igw.watch(t, p, agent, func() error { return setPath(t, v, vpc.ViaInternetGateway) })

	unexpected := igw.alerts[1]
	switch {
	case unexpected.pending == notSeen:
		t.Errorf("PathagentUnexpectedPath fired without being seen pending first")
	case unexpected.pending-igw.seen > clock.scrape+apiSlack:
		t.Errorf("PathagentUnexpectedPath pending %s after the new path showed, "+
			"want within an evaluation (%s)", unexpected.pending-igw.seen, clock.scrape)
	case unexpected.firing-unexpected.pending < pathFor-apiSlack ||
		unexpected.firing-unexpected.pending > pathFor+clock.scrape+apiSlack:
		t.Errorf("PathagentUnexpectedPath pending for %s before firing, want its `for` of %s",
			unexpected.firing-unexpected.pending, pathFor)
	}
	// The kernel's route changed at once: S3 now sees the NAT's address.
	if seen := sources(t, v.S3.AccessLog, mark); len(seen) == 0 || seen[len(seen)-1] != vpc.PublicIP {
		t.Errorf("S3 saw the agent from %v since the change, want %s last", seen, vpc.PublicIP)
	}

	// 2. The first cycle on the blackhole comes within late(interval)
	// and ends after two connect timeouts; the rule's window must then
	// hold only failures; then lag.
	blackhole := &step{
		change: "internet gateway -> blackhole",
		metric: fmt.Sprintf(`pathagent_bucket_failure_reason{bucket=%q,reason="connect_timeout"}`, bucket),
		bound:  late(probeInterval) + blackholeCycle + window + lag + slack,
		why:    "interval+10%, cycle, window, lag, slack",
		alerts: []*expect{{name: "PathagentBucketUnreachable", labels: map[string]string{
			"bucket": bucket, "instance": metricsAddr, "reason": "connect_timeout", "severity": "critical",
		}}},
	}
	steps = append(steps, blackhole)
	blackhole.watch(t, p, agent, func() error { return setPath(t, v, vpc.ViaBlackhole) })

	// The last sample of 1 was scraped at most a scrape before the first
	// failure; the window must lose it, then an evaluation must see that.
	unreachable := blackhole.alerts[0]
	if took := unreachable.firing - blackhole.seen; took < window-clock.scrape-apiSlack ||
		took > window+clock.scrape+apiSlack {
		t.Errorf("PathagentBucketUnreachable fired %s after the failure showed, "+
			"want the window of %s (±%s)", took, window, clock.scrape+apiSlack)
	}

	// Stopped now, so that no cycle is in flight: probe objects are
	// deleted, whatever the path.
	if err := agent.Stop(); err != nil {
		t.Errorf("stop pathagent run: %v", err)
	}
	after, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bucket contents changed:\nbefore %v\nafter  %v", before, after)
	}
}

// setPath sets the route table for p and checks that the lab is still
// closed off.
func setPath(t *testing.T, v *vpc.VPC, p vpc.Path) error {
	if err := v.SetPath(t.Context(), p); err != nil {
		return err
	}
	if err := v.Contained(t.Context()); err != nil {
		return fmt.Errorf("the lab is not closed off after setting the path to %s:\n%w", p, err)
	}
	return nil
}

// agentConfig is `pathagent run`'s configuration: the bucket expecting the
// gateway endpoint, the lab's interval and the shortest topology refresh.
// It is checked to read so.
func agentConfig(t *testing.T) string {
	t.Helper()
	text := fmt.Sprintf("buckets:\n  - name: %s\n    expect_path: gateway_endpoint\n"+
		"interval: %s\ntopology_refresh: %s\n",
		bucket, promDuration(t, probeInterval), promDuration(t, topologyRefresh))
	cfg, err := config.Parse("pathagent.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the agent would reject its configuration: %v\n%s", err, text)
	}
	i := slices.IndexFunc(cfg.Buckets, func(b config.Bucket) bool { return b.Name == bucket })
	if i < 0 || cfg.Buckets[i].ExpectPath != "gateway_endpoint" ||
		cfg.Interval != probeInterval || cfg.TopologyRefresh != topologyRefresh {
		t.Fatalf("configuration reads as %+v\n%s", cfg, text)
	}
	return text
}
