package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/labtest"
	"github.com/pathagent/pathagent/internal/lab/promlab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// The agent's clock in the lab.
const (
	probeInterval = lab.LabInterval

	// topologyRefresh is the shortest the configuration allows: without
	// a change in what the probes see, a route change shows only at the
	// next topology read.
	topologyRefresh = time.Minute

	// labStart bounds the lab's start: two child processes and buckets.
	labStart = time.Minute

	// agentStart bounds the wait for the agent's /metrics.
	agentStart = 15 * time.Second

	// apiSlack is the error of a time seen through the API: the poll
	// period and the request's own time, with room for a loaded machine.
	apiSlack = time.Second

	// healthyWithin bounds the wait for Prometheus to see the bucket
	// reachable: the first cycle comes within a tenth of an interval,
	// then a scrape.
	healthyWithin = 30 * time.Second
)

// The lab's names this test changes.
const (
	bucket     = "lab-data"
	routeTable = "rtb-0private00000001"
)

// short writes a whole number of seconds or minutes as 10s or 1m.
func short(d time.Duration) string {
	s, err := formatDuration(d, 1)
	if err != nil {
		return d.String()
	}
	return s
}

// late is the latest a period of d ends: the agent moves each cycle and
// topology read up to 10% either way.
func late(d time.Duration) time.Duration { return d + d/10 }

// TestAlertsFollowTheWorld runs the real agent in the lab, scraped by a real
// Prometheus with the shipped rules loaded (time-scaled, see rules_test.go).
// The lab changes the world, and the matching alert must fire within a
// bounded number of probe intervals, then resolve when the world heals:
//
//  1. a bucket policy denies everything: PathagentBucketUnreachable with
//     reason access_denied;
//  2. the policy goes: the alert resolves;
//  3. the route table loses its gateway endpoint route: traffic goes
//     through the NAT gateway, PathagentUnexpectedPath;
//  4. the route comes back: the alert resolves.
//
// The seconds from each change to each alert state are logged as a table
// (and written to $PATHAGENT_E2E_TIMELINE when set).
func TestAlertsFollowTheWorld(t *testing.T) {
	promtool, prometheus := promlab.Tools(t)
	root := moduleRoot(t)
	dir := t.TempDir()

	bin := buildAgent(t, root, dir)
	rules, fors := writeScaledRules(t, root, dir, promtool)
	l, s := startLab(t)
	agent, agentAddr := startAgent(t, bin, l, dir)
	p := startPrometheus(t, prometheus, dir, agentAddr, rules)

	tl := &timeline{header: []string{
		fmt.Sprintf("pathagent e2e: probe interval %s, topology refresh %s, scrape and evaluation %s,",
			short(probeInterval), short(topologyRefresh), short(scrapeEvery)),
		fmt.Sprintf("shipped rules with every duration divided by %d; seconds from the world change",
			timeScale(t)),
		fmt.Sprintf("until Prometheus's API showed it (polled every %s); metric: the agent's series "+
			"changed.", pollEvery),
	}}
	t.Cleanup(func() { tl.report(t) })

	healthy := fmt.Sprintf(`pathagent_bucket_reachable{job="pathagent",bucket=%q} == 1`+
		` and on (job, instance, bucket) pathagent_path_expected == 1`, bucket)
	waitQuery(t, p, agent, healthy, healthyWithin)
	checkMetrics(t, promtool, agentAddr, "healthy")
	if alerts, err := p.alerts(); err != nil || len(alerts) > 0 {
		t.Errorf("alerts active while the bucket is healthy: %v %v", alerts, err)
	}

	// One scrape and one evaluation after the agent's metric changes;
	// half an interval for a loaded machine.
	lag := scrapeEvery + evalEvery
	slack := probeInterval / 2

	// 1. The first failing cycle comes within late(interval), 11s; the
	// rule's [10m] window, two cycles scaled to 20s, must then hold only
	// failures; then lag, 4s: 35s at worst, and four intervals leave the
	// slack. Whatever the phase of the cycles, the alert must fire two
	// intervals after the first failure shows: a rule that waited for a
	// third failed cycle, or that the offset term held back, would not.
	const denyIntervals = 4
	st := tl.begin("bucket policy denies s3:*", "PathagentBucketUnreachable",
		denyIntervals*probeInterval, fmt.Sprintf("%d intervals", denyIntervals))
	deny := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",`+
		`"Action":"s3:*","Resource":["arn:aws:s3:::%[1]s","arn:aws:s3:::%[1]s/*"]}]}`, bucket)
	setPolicy(t, l, deny)
	st.changed()
	watch(t, p, agent, st, fmt.Sprintf(`pathagent_bucket_reachable{bucket=%q} == 0`, bucket),
		map[string]string{"bucket": bucket, "reason": "access_denied", "severity": "critical"}, false)
	// The last sample of 1 was scraped at most a scrape before the first
	// 0; the window must lose it, then an evaluation must see that.
	window := 2 * probeInterval
	took := st.firing - st.metric
	if took < window-scrapeEvery-apiSlack || took > window+evalEvery+apiSlack {
		t.Errorf("PathagentBucketUnreachable fired %s after the failure showed, "+
			"want the window of %s (±%s)", took, window, scrapeEvery+apiSlack)
	}
	// The exposition of a failing bucket has series a healthy one lacks.
	checkMetrics(t, promtool, agentAddr, "bucket failing")

	// 2. The first good cycle ends the alert: no window to wait out.
	st = tl.begin("bucket policy removed", "PathagentBucketUnreachable",
		late(probeInterval)+lag+slack, "interval+10%, lag, slack")
	setPolicy(t, l, "")
	st.changed()
	watch(t, p, agent, st, fmt.Sprintf(`pathagent_bucket_reachable{bucket=%q} == 1`, bucket),
		map[string]string{"bucket": bucket}, true)

	// 3. Nothing the probes see changes (the lab's S3 answers the same
	// way), so the agent learns of the route at its next topology read:
	// at most late(refresh) after the last one, which came before the
	// change, and at the first cycle after that. Then lag, then the
	// rule's `for`, which ends at an evaluation.
	pathFor := fors["PathagentUnexpectedPath"]
	if pathFor == 0 {
		t.Fatal("PathagentUnexpectedPath has no `for` in the scaled rules")
	}
	st = tl.begin("gateway endpoint route removed", "PathagentUnexpectedPath",
		late(topologyRefresh)+late(probeInterval)+lag+pathFor+evalEvery+slack,
		"refresh+10%, interval+10%, for, lag, slack")
	l.EC2.SetScenario(withoutEndpointRoute(t, s))
	st.changed()
	watch(t, p, agent, st, fmt.Sprintf(`pathagent_path_info{bucket=%q,kind="nat_gateway"}`, bucket),
		map[string]string{
			"bucket": bucket, "kind": "nat_gateway", "expected": "gateway_endpoint",
			"route_table": routeTable, "severity": "warning",
		}, false)
	// Pending at the first evaluation after the new path shows, firing
	// once `for` has passed, at an evaluation.
	switch {
	case st.pending == notSeen:
		t.Errorf("PathagentUnexpectedPath fired without being seen pending first")
	case st.pending-st.metric > evalEvery+apiSlack:
		t.Errorf("PathagentUnexpectedPath pending %s after the new path showed, "+
			"want within an evaluation (%s)", st.pending-st.metric, evalEvery)
	case st.firing-st.pending < pathFor-apiSlack || st.firing-st.pending > pathFor+evalEvery+apiSlack:
		t.Errorf("PathagentUnexpectedPath pending for %s before firing, want its `for` of %s",
			st.firing-st.pending, pathFor)
	}

	// 4. As for 3, without the `for`.
	st = tl.begin("gateway endpoint route restored", "PathagentUnexpectedPath",
		late(topologyRefresh)+late(probeInterval)+lag+slack, "refresh+10%, interval+10%, lag, slack")
	l.EC2.SetScenario(s)
	st.changed()
	watch(t, p, agent, st,
		fmt.Sprintf(`pathagent_path_info{bucket=%q,kind="gateway_endpoint"}`, bucket),
		map[string]string{"bucket": bucket}, true)
}

// startLab starts the gateway-endpoint scenario's lab.
func startLab(t *testing.T) (*lab.Lab, *scenario.Scenario) {
	t.Helper()
	s := labtest.Scenario(t, "gateway-endpoint")
	return labtest.Start(t, s), s
}

// cleanEnv is the environment every child starts from: the test's, less
// whatever would point it away from the lab (lab.CleanEnv), and less
// systemd's variables, which belong to whatever runs the test.
func cleanEnv() []string {
	return slices.DeleteFunc(lab.CleanEnv(os.Environ()), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
			"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			return true
		}
		return false
	})
}

// startAgent writes the agent's configuration and runs `pathagent run`
// until the test ends. It returns the agent and its metrics address.
func startAgent(t *testing.T, bin string, l *lab.Lab, dir string) (*child, string) {
	t.Helper()
	cfg := writeAgentConfig(t, l, dir)
	addr := freeAddr(t)
	env := append(cleanEnv(), l.Env()...)
	c := startChild(t, "pathagent", dir, env, bin, "run",
		"--config", cfg,
		"--web.listen-address", addr,
		"--log-level", "debug")
	waitHTTP(t, c, "http://"+addr+"/metrics", agentStart)
	return c, addr
}

// writeAgentConfig copies the lab's agent configuration, with the bucket's
// expected path and the shortest topology refresh added, and checks that
// the agent will read it so.
func writeAgentConfig(t *testing.T, l *lab.Lab, dir string) string {
	t.Helper()
	data, err := os.ReadFile(l.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("lab config %s: %v", l.ConfigPath(), err)
	}
	top := doc.Content[0]
	if lookup(top, "topology_refresh") != nil {
		t.Fatalf("lab config %s sets topology_refresh already; the test sets its own", l.ConfigPath())
	}

	str := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	}
	buckets := lookup(top, "buckets")
	if buckets == nil {
		t.Fatalf("lab config %s has no buckets", l.ConfigPath())
	}
	for i, b := range buckets.Content {
		if b.Kind == yaml.ScalarNode && b.Value == bucket {
			buckets.Content[i] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
				str("name"), str(bucket),
				str("expect_path"), str("gateway_endpoint"),
			}}
		}
	}
	top.Content = append(top.Content, str("topology_refresh"), str(topologyRefresh.String()))

	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pathagent.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the agent would reject its configuration: %v\n%s", err, out)
	}
	i := slices.IndexFunc(cfg.Buckets, func(b config.Bucket) bool { return b.Name == bucket })
	if i < 0 || cfg.Buckets[i].ExpectPath != "gateway_endpoint" ||
		cfg.TopologyRefresh != topologyRefresh || cfg.Interval != probeInterval {
		t.Fatalf("configuration reads as %+v, want bucket %s expecting gateway_endpoint, "+
			"topology refresh %s, interval %s\n%s", cfg, bucket, topologyRefresh, probeInterval, out)
	}
	return path
}

// withoutEndpointRoute returns a copy of s whose route table has lost its
// prefix-list route to the gateway endpoint; S3 traffic then matches the
// default route, to the NAT gateway. s itself is not changed: the EC2
// stand-in still holds it.
func withoutEndpointRoute(t *testing.T, s *scenario.Scenario) *scenario.Scenario {
	t.Helper()
	c := *s
	c.RouteTables = slices.Clone(s.RouteTables)
	removed := 0
	for i, rt := range c.RouteTables {
		if rt.ID != routeTable {
			continue
		}
		c.RouteTables[i].Routes = slices.DeleteFunc(slices.Clone(rt.Routes), func(r scenario.Route) bool {
			if r.PrefixList != "" {
				removed++
				return true
			}
			return false
		})
	}
	if removed != 1 {
		t.Fatalf("removed %d prefix-list routes from %s, want 1: has the scenario changed?",
			removed, routeTable)
	}
	return &c
}

// setPolicy replaces the bucket's policy; empty deletes it.
func setPolicy(t *testing.T, l *lab.Lab, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), httpTimeout)
	defer cancel()
	if err := l.S3.SetBucketPolicy(ctx, bucket, policy); err != nil {
		t.Fatal(err)
	}
}

// waitQuery waits until an instant query returns a series.
func waitQuery(t *testing.T, p *prom, agent *child, query string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		agent.alive(t)
		p.alive(t)
		var ok bool
		if ok, err = p.has(query); err == nil && ok {
			return
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("no series for %s within %s (last error: %v)", query, within, err)
}

// checkMetrics has promtool lint a live scrape of the agent; it must find
// nothing at all.
func checkMetrics(t *testing.T, promtool, agentAddr, when string) {
	t.Helper()
	body, err := get("http://" + agentAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(fmt.Sprintf("pathagent_bucket_reachable{bucket=%q}", bucket))) {
		t.Errorf("scrape (%s) lacks pathagent_bucket_reachable for %s", when, bucket)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Env = cleanEnv()
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on a live scrape (%s): %v\n%s", when, err, out)
	}
}
