package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
	dto "github.com/prometheus/client_model/go"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/labtest"
	"github.com/pathagent/pathagent/internal/lab/scenario"
	"github.com/pathagent/pathagent/internal/metrics"
)

// testInterval is the cycle period in these tests: fast enough for several
// cycles in a second, slow enough that a healthy lab cycle (tens of
// milliseconds) never overlaps the next.
const testInterval = 250 * time.Millisecond

type harness struct {
	lab *lab.Lab
	s   *scenario.Scenario
	d   *Daemon
	m   *metrics.Metrics

	mu   sync.Mutex
	cfg  *config.Config
	bad  error // what Load returns instead of cfg, when set
	stop context.CancelFunc
	done chan error
}

func newHarness(t *testing.T, name string) *harness {
	t.Helper()
	s := labtest.Scenario(t, name)
	l := labtest.Start(t, s)

	cfg, err := config.Load(l.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Interval = testInterval
	cfg.Buckets[0].ExpectPath = "gateway_endpoint"

	h := &harness{lab: l, s: s, cfg: cfg, m: metrics.New(metrics.BuildInfo{Version: "test"})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	awsCfg := aws.Config{
		Region:       s.Region,
		BaseEndpoint: aws.String(l.EC2URL()),
		Credentials: credentials.NewStaticCredentialsProvider(
			lab.AgentAccessKeyID, lab.AgentSecretAccessKey, ""),
	}
	h.d = &Daemon{
		Load: func() (*config.Config, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.bad != nil {
				return nil, h.bad
			}
			return h.cfg, nil
		},
		NewAgent: func(c *config.Config) *agent.Agent {
			return &agent.Agent{
				Config:        c,
				IMDS:          imds.NewClient(imds.ClientOptions{Endpoint: l.IMDS.URL()}),
				AWS:           awsCfg,
				EC2APIOptions: []func(*middleware.Stack) error{CountEC2Calls(h.m)},
				Resolver:      c.Resolver,
				Log:           log,
			}
		},
		Metrics:         h.m,
		Log:             log,
		EarlyRefreshGap: time.Millisecond,
	}
	return h
}

func (h *harness) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	t.Cleanup(func() { h.shutdown(t) })
}

func (h *harness) shutdown(t *testing.T) {
	t.Helper()
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Error("Run did not return after its context ended")
	}
}

// value returns the value of a metric with the given labels, and whether
// such a series exists.
func (h *harness) value(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := h.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				switch {
				case m.Gauge != nil:
					return m.Gauge.GetValue(), true
				case m.Counter != nil:
					return m.Counter.GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func matches(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}

func (h *harness) cycles(t *testing.T) float64 {
	v, _ := h.value(t, "pathagent_cycles_total", nil)
	return v
}

// The daemon probes every interval, reads the topology once and keeps it,
// and leaves the bucket as it found it.
func TestCyclesReuseTopology(t *testing.T) {
	h := newHarness(t, "gateway-endpoint")
	h.start(t)

	waitFor(t, "four cycles", 10*time.Second, func() bool { return h.cycles(t) >= 4 })

	bucket := map[string]string{"bucket": "lab-data"}
	if v, _ := h.value(t, "pathagent_bucket_reachable", bucket); v != 1 {
		t.Errorf("bucket_reachable = %v, want 1", v)
	}
	if v, ok := h.value(t, "pathagent_path_info", map[string]string{
		"bucket": "lab-data", "kind": "gateway_endpoint", "target": "vpce-0gw0000000000001",
	}); !ok || v != 1 {
		t.Errorf("path_info for the gateway endpoint missing")
	}
	if v, _ := h.value(t, "pathagent_path_expected", bucket); v != 1 {
		t.Errorf("path_expected = %v, want 1", v)
	}
	for _, call := range []string{"DescribeRouteTables", "DescribeVpcEndpoints", "GetManagedPrefixListEntries"} {
		if v, _ := h.value(t, "pathagent_ec2_api_calls_total", map[string]string{"call": call}); v != 1 {
			t.Errorf("%s called %v times over several cycles, want 1", call, v)
		}
	}
	if got := h.lab.EC2.Calls()["DescribeRouteTables"]; got != 1 {
		t.Errorf("the EC2 stand-in saw %d DescribeRouteTables, want 1", got)
	}

	h.shutdown(t)
	objs, err := h.lab.S3.ListObjects(context.Background(), "lab-data")
	if err != nil {
		t.Fatal(err)
	}
	for k := range objs {
		if strings.HasPrefix(k, "pathagent-probe/") {
			t.Errorf("probe object %s left behind", k)
		}
	}
}

// When the world changes (the bucket policy starts to deny and the route
// table loses its endpoint route), the changed outcome triggers an early
// topology read, and the metrics show the new path and the failure.
func TestChangeTriggersEarlyRefresh(t *testing.T) {
	h := newHarness(t, "gateway-endpoint")
	h.start(t)
	waitFor(t, "two cycles", 10*time.Second, func() bool { return h.cycles(t) >= 2 })

	// The route table loses the endpoint route: S3 now goes out via NAT.
	changed := *h.s
	changed.RouteTables = append([]scenario.RouteTable(nil), h.s.RouteTables...)
	for i, rt := range changed.RouteTables {
		if rt.ID != "rtb-0private00000001" {
			continue
		}
		var routes []scenario.Route
		for _, r := range rt.Routes {
			if r.PrefixList == "" {
				routes = append(routes, r)
			}
		}
		changed.RouteTables[i].Routes = routes
	}
	h.lab.EC2.SetScenario(&changed)
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",` +
		`"Resource":["arn:aws:s3:::lab-data","arn:aws:s3:::lab-data/*"]}]}`
	if err := h.lab.S3.SetBucketPolicy(context.Background(), "lab-data", deny); err != nil {
		t.Fatal(err)
	}

	bucket := map[string]string{"bucket": "lab-data"}
	waitFor(t, "the NAT path", 10*time.Second, func() bool {
		_, ok := h.value(t, "pathagent_path_info", map[string]string{"bucket": "lab-data", "kind": "nat_gateway"})
		return ok
	})
	if v, _ := h.value(t, "pathagent_bucket_reachable", bucket); v != 0 {
		t.Errorf("bucket_reachable = %v, want 0", v)
	}
	if _, ok := h.value(t, "pathagent_bucket_failure_reason", map[string]string{"bucket": "lab-data", "reason": "access_denied"}); !ok {
		t.Error("failure reason access_denied missing")
	}
	if v, _ := h.value(t, "pathagent_path_changes_total", bucket); v != 1 {
		t.Errorf("path_changes_total = %v, want 1", v)
	}
	if v, _ := h.value(t, "pathagent_path_expected", bucket); v != 0 {
		t.Errorf("path_expected = %v, want 0", v)
	}
	if _, ok := h.value(t, "pathagent_path_info", map[string]string{"bucket": "lab-data", "kind": "gateway_endpoint"}); ok {
		t.Error("the old path's series is still exposed")
	}
	if got := h.lab.EC2.Calls()["DescribeRouteTables"]; got != 2 {
		t.Errorf("DescribeRouteTables called %d times, want 2 (start, then early refresh)", got)
	}

	// The world heals: the bucket is reachable again and the reason goes.
	if err := h.lab.S3.SetBucketPolicy(context.Background(), "lab-data", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery", 10*time.Second, func() bool {
		v, _ := h.value(t, "pathagent_bucket_reachable", bucket)
		return v == 1
	})
	if _, ok := h.value(t, "pathagent_bucket_failure_reason", bucket); ok {
		t.Error("failure reason still exposed after recovery")
	}
}

// A cycle that outlasts the interval is not doubled up; the skipped cycle
// is counted.
func TestSlowCycleIsNotDoubled(t *testing.T) {
	h := newHarness(t, "gateway-endpoint")
	// The resolver never answers for the S3 name: each probe waits out
	// the resolver's timeout, far longer than the interval.
	h.lab.DNS.SetFault("s3.us-east-1.amazonaws.com", dnsserver.Fault{Drop: true})
	h.start(t)

	waitFor(t, "a skipped cycle", 15*time.Second, func() bool {
		v, _ := h.value(t, "pathagent_cycles_skipped_total", nil)
		return v >= 1
	})
	if c := h.cycles(t); c > 1 {
		t.Errorf("%v cycles finished while each should take seconds", c)
	}
}

// A rejected configuration keeps the running one and says so in a metric;
// a good one takes over.
func TestReload(t *testing.T) {
	h := newHarness(t, "gateway-endpoint")
	h.start(t)
	waitFor(t, "a cycle", 10*time.Second, func() bool { return h.cycles(t) >= 1 })

	h.mu.Lock()
	h.bad = errors.New("pathagent.yaml:3: buckets[0].colour: unknown key")
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("Reload of a bad file = %v, want its error", err)
	}
	if v, _ := h.value(t, "pathagent_config_last_reload_successful", nil); v != 0 {
		t.Errorf("config_last_reload_successful = %v after a rejected file, want 0", v)
	}
	before := h.cycles(t)
	waitFor(t, "cycles to go on", 10*time.Second, func() bool { return h.cycles(t) > before })

	// A good file without the bucket's expected path drops the
	// path_expected series.
	good := *h.cfg
	good.Buckets = []config.Bucket{{Name: "lab-data"}}
	h.mu.Lock()
	h.bad, h.cfg = nil, &good
	h.mu.Unlock()
	if err := h.d.Reload(ctx); err != nil {
		t.Fatalf("Reload of a good file: %v", err)
	}
	if v, _ := h.value(t, "pathagent_config_last_reload_successful", nil); v != 1 {
		t.Errorf("config_last_reload_successful = %v, want 1", v)
	}
	after := h.cycles(t)
	waitFor(t, "a cycle with the new file", 10*time.Second, func() bool { return h.cycles(t) > after })
	if _, ok := h.value(t, "pathagent_path_expected", map[string]string{"bucket": "lab-data"}); ok {
		t.Error("path_expected still exposed after the expectation was removed")
	}
}
