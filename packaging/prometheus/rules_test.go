// Package prometheus_test checks the Prometheus and Grafana files shipped
// with pathagent: promtool accepts the rules, their unit tests and the
// scrape configuration; every alert is tested; and the rules and the
// dashboard ask only for metrics that docs/metrics.md promises.
package prometheus_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile     = "pathagent-rules.yml"
	rulesTestFile = "pathagent-rules.test.yml"
	configFile    = "prometheus.yml"
	dashboardFile = "../grafana/pathagent-dashboard.json"
	contractFile  = "../../docs/metrics.md"
)

// promtool returns the path of promtool, failing the test when there is
// none: a missing tool must not pass for a checked file.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found on PATH: run `make promtool` (or `apt-get install prometheus`, " +
			"which ships it); `make test` does this first")
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", rulesFile)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, "test", "rules", rulesTestFile)
}

func TestPromtoolCheckConfig(t *testing.T) {
	runPromtool(t, "check", "config", configFile)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestEveryAlertTested requires, for every alert, a case where it fires
// and one where it does not: a test that can only pass proves little.
func TestEveryAlertTested(t *testing.T) {
	var rules ruleFile
	var tests ruleTestFile
	readYAML(t, rulesFile, &rules)
	readYAML(t, rulesTestFile, &tests)

	firing := map[string]bool{}
	silent := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}

	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !firing[r.Alert] {
				t.Errorf("alert %s: no test case where it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("alert %s: no test case where it does not fire", r.Alert)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s: no alerts found", rulesFile)
	}
	for name := range firing {
		if !alerts[name] {
			t.Errorf("%s tests alert %s, which %s does not define", rulesTestFile, name, rulesFile)
		}
	}
}

// TestAlertsLabelledAndExplained: routing needs the severity, and the
// person paged needs to know what broke and what to check.
func TestAlertsLabelledAndExplained(t *testing.T) {
	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			switch sev := r.Labels["severity"]; sev {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, sev)
			}
			for _, key := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, key)
				}
			}
		}
	}
}

// contractMetrics reads the metric names from the tables of
// docs/metrics.md: the first cell of each row, in backquotes.
func contractMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(contractFile)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\|\\s*`(pathagent_[a-z0-9_]+)`\\s*\\|")
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		}
	}
	// A handful would mean the table format changed under the parser.
	if len(names) < 20 {
		t.Fatalf("%s: found only %d metric names: %v", contractFile, len(names), names)
	}
	return names
}

// runtimePrefixes are the Go runtime and process collectors' families,
// which docs/metrics.md promises by prefix, not by name. The rules may use
// them (a process's start time); the dashboard keeps to pathagent's own.
var runtimePrefixes = []string{"go_", "process_"}

func TestRulesUseContractMetrics(t *testing.T) {
	known := contractMetrics(t)
	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, name := range metricNames(r.Expr) {
				if known[name] || name == "up" || hasAnyPrefix(name, runtimePrefixes) {
					continue
				}
				t.Errorf("rule %s%s: metric %s is not in %s", r.Alert, r.Record, name, contractFile)
			}
		}
	}
}

type dashboard struct {
	UID           string                        `json:"uid"`
	SchemaVersion int                           `json:"schemaVersion"`
	Panels        []dashPanel                   `json:"panels"`
	Templating    struct{ List []dashVariable } `json:"templating"`
}

type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *dashDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVariable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

// query returns a query variable's query, which Grafana stores either as
// a string or as an object holding it.
func (v dashVariable) query() (string, error) {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s, nil
	}
	var o struct{ Query string }
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return o.Query, nil
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// walkPanels calls fn for every panel, rows' children included.
func walkPanels(ps []dashPanel, fn func(dashPanel)) {
	for _, p := range ps {
		fn(p)
		walkPanels(p.Panels, fn)
	}
}

// dashboardQueries returns every PromQL query of the dashboard by where it
// is used: panels' targets, and the series selectors of label_values
// variables.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	qs := map[string]string{}
	walkPanels(d.Panels, func(p dashPanel) {
		for _, tg := range p.Targets {
			if tg.Expr != "" {
				qs[fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	})
	labelValues := regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.query()
		if err != nil {
			t.Fatal(err)
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[1]
		}
		qs["variable "+v.Name] = q
	}
	return qs
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later", d.SchemaVersion)
	}

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for name, typ := range map[string]string{"DS_PROMETHEUS": "datasource", "instance": "query", "bucket": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}

	ids := map[int]string{}
	walkPanels(d.Panels, func(p dashPanel) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			return
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
	})
}

func TestDashboardUsesContractMetrics(t *testing.T) {
	known := contractMetrics(t)
	qs := dashboardQueries(t, readDashboard(t))
	if len(qs) == 0 {
		t.Fatal("dashboard has no queries")
	}
	for where, q := range qs {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, q)
		}
		for _, name := range names {
			if !known[name] && name != "up" {
				t.Errorf("%s: metric %s is not in %s", where, name, contractFile)
			}
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, as
// the expression of a recording rule, with Grafana's variables replaced by
// values of the same shape.
func TestDashboardQueriesParse(t *testing.T) {
	tool := promtool(t)
	qs := dashboardQueries(t, readDashboard(t))
	vars := strings.NewReplacer(
		"$__rate_interval", "5m",
		"$__interval", "1m",
		"$__range", "6h",
		"$instance", ".*",
		"$bucket", ".*",
	)

	wheres := make([]string, 0, len(qs))
	for w := range qs {
		wheres = append(wheres, w)
	}
	sort.Strings(wheres)

	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, w := range wheres {
		rules = append(rules, rule{
			Record: fmt.Sprintf("dashboard_query_%d", i),
			Expr:   vars.Replace(qs[w]),
		})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\nqueries in order: %q", err, out, wheres)
	}
}

var (
	// Removed before names are looked for: quoted strings (label values,
	// regexes), label matchers, range and subquery brackets, offsets,
	// Grafana variables, and the label lists of grouping and matching.
	quoted     = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	braces     = regexp.MustCompile(`\{[^}]*\}`)
	brackets   = regexp.MustCompile(`\[[^\]]*\]`)
	offset     = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
	grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*`)
	labelList  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)

	// A number is matched first so that its exponent is not a name.
	token = regexp.MustCompile(`0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?`)

	keywords = []string{
		"and", "or", "unless", "by", "without", "on", "ignoring",
		"group_left", "group_right", "offset", "bool", "inf", "nan", "atan2",
	}
)

// metricNames returns the metric names a PromQL expression selects, sorted
// and once each: every name that is neither a keyword nor called as a
// function or aggregation.
func metricNames(expr string) []string {
	s := quoted.ReplaceAllString(expr, `""`)
	s = grafanaVar.ReplaceAllString(s, "")
	s = braces.ReplaceAllString(s, "")
	s = brackets.ReplaceAllString(s, "")
	s = offset.ReplaceAllString(s, "")
	s = labelList.ReplaceAllString(s, "")

	seen := map[string]bool{}
	for _, m := range token.FindAllStringSubmatch(s, -1) {
		name, call := m[1], m[2]
		if name == "" || call != "" || slices.Contains(keywords, strings.ToLower(name)) {
			continue
		}
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{
			name: "selector with matchers",
			expr: `pathagent_probe_success{bucket=~"$bucket", op="put"}`,
			want: []string{"pathagent_probe_success"},
		},
		{
			name: "aggregation, range and grafana variable",
			expr: `sum by (bucket, reason) (increase(pathagent_probe_failures_total[$__rate_interval]))`,
			want: []string{"pathagent_probe_failures_total"},
		},
		{
			name: "join: the label lists are not metrics",
			expr: "(pathagent_path_expected == 0)\n* on (job, instance, bucket) group_left (kind, target)\n  pathagent_path_info",
			want: []string{"pathagent_path_expected", "pathagent_path_info"},
		},
		{
			name: "numbers, exponents, offset and time()",
			expr: `time() - pathagent_last_cycle_timestamp_seconds offset 10m > 3e2 and up == 1`,
			want: []string{"pathagent_last_cycle_timestamp_seconds", "up"},
		},
		{
			name: "function arguments and a label that looks like a metric",
			expr: `quantile_over_time(0.95, pathagent_probe_duration_seconds{instance=~"${instance}"}[1h]) or label_replace(vector(1), "x", "not_a_metric", "", "")`,
			want: []string{"pathagent_probe_duration_seconds"},
		},
		{
			name: "an undocumented name is found",
			expr: `rate(pathagent_made_up_total[5m]) > bool pathagent_probes_total`,
			want: []string{"pathagent_made_up_total", "pathagent_probes_total"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
