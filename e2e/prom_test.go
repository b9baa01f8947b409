package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Prometheus's clock, scaled like the rules (see rules_test.go): the fleet
// scrapes and evaluates every minute and looks back 5 minutes for a
// sample.
const (
	scrapeEvery = 2 * time.Second
	evalEvery   = 2 * time.Second
	lookback    = 10 * time.Second

	// scrapeTimeout is not scaled: a third of a second would measure the
	// machine's load, not the agent. The agent answers in milliseconds.
	scrapeTimeout = scrapeEvery

	// promStart bounds Prometheus's start on an empty database.
	promStart = 30 * time.Second
)

// prom is a running Prometheus and its HTTP API.
type prom struct {
	*child
	base string // http://127.0.0.1:PORT
}

// startPrometheus runs Prometheus scraping the agent at target as job
// pathagent, with the rules file loaded, and waits until it is ready.
func startPrometheus(t *testing.T, binary, dir, target, rules string) *prom {
	t.Helper()
	cfg := fmt.Sprintf(`# Written by the pathagent e2e test.
global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
rule_files:
  - %q
scrape_configs:
  - job_name: pathagent
    static_configs:
      - targets: [%q]
`, scrapeEvery, scrapeTimeout, evalEvery, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	p := &prom{base: "http://" + addr}
	p.child = startChild(t, "prometheus", dir, cleanEnv(), binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr,
		"--query.lookback-delta="+lookback.String(),
	)
	waitHTTP(t, p.child, p.base+"/-/ready", promStart)
	return p
}

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

func (p *prom) api(path string, data any) error {
	body, err := get(p.base + path)
	if err != nil {
		return err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: status %s: %s", path, r.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// alert is one entry of /api/v1/alerts: pending or firing. A resolved
// alert is not listed.
type alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
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

// alerts returns the active alerts.
func (p *prom) alerts() ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.api("/api/v1/alerts", &data)
	return data.Alerts, err
}

// has reports whether an instant query returns at least one series.
func (p *prom) has(query string) (bool, error) {
	var data struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(query), &data); err != nil {
		return false, err
	}
	if data.ResultType != "vector" {
		return false, fmt.Errorf("query %s: result type %s, want vector", query, data.ResultType)
	}
	return len(data.Result) > 0, nil
}

// find returns the first alert named name whose labels include want.
func find(alerts []alert, name string, want map[string]string) (alert, bool) {
	for _, a := range alerts {
		if a.Labels["alertname"] != name {
			continue
		}
		ok := true
		for k, v := range want {
			if a.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return a, true
		}
	}
	return alert{}, false
}
