package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	vpc "github.com/pathagent/pathagent/internal/lab/netns"
	"github.com/pathagent/pathagent/internal/lab/promlab"
)

const (
	// promAddr is where Prometheus listens: the router's address on the
	// subnet, as a monitoring host in the VPC would be reached.
	promAddr = vpc.SubnetGW + ":9090"

	// promStart bounds Prometheus's start on an empty database.
	promStart = 30 * time.Second

	// pollEvery is how often the test asks Prometheus: small against
	// the scaled evaluation interval, so the times recorded are the
	// API's, not the test's.
	pollEvery = 250 * time.Millisecond

	// apiSlack is the error of a time seen through the API: the poll
	// period and the request's own time, with room for a loaded machine.
	apiSlack = time.Second
)

// notSeen marks a moment that has not been observed.
const notSeen time.Duration = -1

// prom is Prometheus running in the router namespace, and a client that
// reaches its API from inside that namespace.
type prom struct {
	proc   *vpc.Proc
	client *http.Client
}

// promClock is Prometheus's clock scaled like the rules: the fleet's
// scrape (and evaluation) interval and lookback divided by the ratio.
type promClock struct {
	ratio            int64
	scrape, lookback time.Duration
}

func newPromClock(t *testing.T) promClock {
	t.Helper()
	ratio, err := promlab.Ratio()
	if err != nil {
		t.Fatal(err)
	}
	r := time.Duration(ratio)
	return promClock{ratio: ratio, scrape: promlab.FleetScrape / r, lookback: promlab.FleetLookback / r}
}

// promDuration writes d as Prometheus does: 2s, not Go's 2s or 1m0s.
func promDuration(t *testing.T, d time.Duration) string {
	t.Helper()
	s, err := promlab.FormatDuration(d, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startPrometheus runs Prometheus in the router namespace, scraping the
// agent on metricsAddr as job pathagent with the rules file loaded, and
// waits until it is ready. The test's cleanup stops it.
func startPrometheus(t *testing.T, v *vpc.VPC, binary, rules string, clock promClock) *prom {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`# Written by the pathagent netns test.
global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
rule_files:
  - %[2]q
scrape_configs:
  - job_name: pathagent
    static_configs:
      - targets: [%[3]q]
`, promDuration(t, clock.scrape), rules, metricsAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := v.Router.Command(binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr,
		"--query.lookback-delta="+promDuration(t, clock.lookback),
	)
	cmd.Dir = dir
	cmd.Env = lab.CleanEnv(os.Environ())
	p, err := vpc.StartProc("prometheus", cmd, filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%v", err)
		}
		if t.Failed() {
			t.Logf("end of prometheus's log:\n%s", vpc.LogTail(p.LogPath, 30))
		}
	})

	pr := &prom{proc: p, client: v.Router.HTTPClient(nil, "")}
	deadline := time.Now().Add(promStart)
	for {
		_, err := pr.get(t.Context(), "/-/ready")
		if err == nil {
			return pr
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s in %s within %s: %v", promAddr, v.Router.Name,
				promStart, err)
		}
		select {
		case <-p.Exited():
			t.Fatal(p.ExitError())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *prom) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+promAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// api decodes the data of one API answer.
func (p *prom) api(ctx context.Context, path string, data any) error {
	body, err := p.get(ctx, path)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: status %s: %s", path, r.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// has reports whether an instant query returns at least one series.
func (p *prom) has(ctx context.Context, query string) (bool, error) {
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	err := p.api(ctx, "/api/v1/query?query="+url.QueryEscape(query), &data)
	return len(data.Result) > 0, err
}

// alert is one entry of /api/v1/alerts: pending or firing.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (a alert) String() string {
	var labels []string
	for k, v := range a.Labels {
		if k != "alertname" {
			labels = append(labels, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(labels)
	return fmt.Sprintf("%s{%s} %s", a.Labels["alertname"], strings.Join(labels, ","), a.State)
}

func (p *prom) alerts(ctx context.Context) ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.api(ctx, "/api/v1/alerts", &data)
	return data.Alerts, err
}

// expect is an alert a step waits for, and when the API showed it.
type expect struct {
	name            string
	labels          map[string]string // a subset of the alert's labels
	pending, firing time.Duration
}

func (e *expect) matches(a alert) bool {
	if a.Labels["alertname"] != e.name {
		return false
	}
	for k, v := range e.labels {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// step is one change of the lab's world and what Prometheus's API showed
// after it, each moment as the time since the change.
type step struct {
	change string        // what the lab changed
	metric string        // a query that shows the change in the agent's series
	bound  time.Duration // the latest every alert may fire
	why    string        // how the bound was chosen

	at     time.Time
	seen   time.Duration // when metric first returned a series
	alerts []*expect
	others map[string]string // other alerts active, with their last state
}

func (st *step) mark(d *time.Duration) {
	if *d == notSeen {
		*d = time.Since(st.at)
	}
}

// watch makes the change, then polls Prometheus until the step's metric
// shows and each of its alerts fires. It fails the test when the step's
// bound passes first, or when the agent or Prometheus exits.
func (st *step) watch(t *testing.T, p *prom, agent *vpc.Proc, change func() error) {
	t.Helper()
	st.seen = notSeen
	st.others = map[string]string{}
	for _, e := range st.alerts {
		e.pending, e.firing = notSeen, notSeen
	}
	if err := change(); err != nil {
		t.Fatal(err)
	}
	st.at = time.Now()

	ctx := t.Context()
	deadline := st.at.Add(st.bound)
	var last []alert
	var lastErr error
	for {
		for _, proc := range []*vpc.Proc{agent, p.proc} {
			select {
			case <-proc.Exited():
				t.Fatal(proc.ExitError())
			default:
			}
		}
		if ok, err := p.has(ctx, st.metric); err != nil {
			lastErr = err
		} else if ok {
			st.mark(&st.seen)
		}
		if alerts, err := p.alerts(ctx); err != nil {
			lastErr = err
		} else {
			last = alerts
			st.note(alerts)
		}
		if st.done() {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery)
	}

	var active []string
	for _, a := range last {
		active = append(active, a.String())
	}
	t.Fatalf("step %q: not done within %s (%s): metric %s seen %s\nactive alerts:\n  %s\n"+
		"last API error: %v\nagent log:\n%s", st.change, st.bound, st.why, st.metric,
		secs(st.seen), strings.Join(active, "\n  "), lastErr, vpc.LogTail(agent.LogPath, 15))
}

// note records the moments the step's alerts show in alerts.
func (st *step) note(alerts []alert) {
	for _, a := range alerts {
		mine := false
		for _, e := range st.alerts {
			if !e.matches(a) {
				continue
			}
			mine = true
			switch a.State {
			case "pending":
				st.mark(&e.pending)
			case "firing":
				st.mark(&e.firing)
			}
		}
		if !mine {
			st.others[a.Labels["alertname"]] = a.State
		}
	}
}

func (st *step) done() bool {
	if st.seen == notSeen {
		return false
	}
	for _, e := range st.alerts {
		if e.firing == notSeen {
			return false
		}
	}
	return true
}

func secs(d time.Duration) string {
	if d == notSeen {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// timeline formats steps as a table: seconds from each change until the
// agent's series showed it and until each alert was pending and firing.
func timeline(header string, steps []*step) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "step\tworld change\tmetric\talert\tpending\tfiring\tbound")
	for i, st := range steps {
		if st.at.IsZero() {
			continue
		}
		if len(st.alerts) == 0 {
			fmt.Fprintf(w, "%d\t%s\t%s\t(none)\t\t\t%s (%s)\n", i+1, st.change, secs(st.seen),
				secs(st.bound), st.why)
		}
		for _, e := range st.alerts {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s (%s)\n", i+1, st.change, secs(st.seen),
				e.name, secs(e.pending), secs(e.firing), secs(st.bound), st.why)
		}
	}
	w.Flush()
	for i, st := range steps {
		var others []string
		for name, state := range st.others {
			others = append(others, name+" ("+state+")")
		}
		if len(others) > 0 {
			sort.Strings(others)
			fmt.Fprintf(&b, "step %d, also active: %s\n", i+1, strings.Join(others, ", "))
		}
	}
	return b.String()
}
