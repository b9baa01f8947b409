package e2e

// Time compression of the shipped alert rules: internal/lab/promlab
// divides every duration in packaging/prometheus/pathagent-rules.yml by
// config.DefaultInterval / lab.LabInterval (5m / 10s = 30), so the rules
// ask the same questions of the same series on the lab's faster clock. Its
// package documentation says what is scaled and why.

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pathagent/pathagent/internal/lab/promlab"
)

// timeScale is how many times faster the lab's clock runs than the one the
// rules were written for.
func timeScale(t *testing.T) int64 {
	t.Helper()
	ratio, err := promlab.Ratio()
	if err != nil {
		t.Fatal(err)
	}
	return ratio
}

// writeScaledRules writes the shipped rules, time-scaled, into dir, has
// promtool check them, and returns the file and each alert's scaled `for`.
func writeScaledRules(t *testing.T, root, dir, promtool string) (string, map[string]time.Duration) {
	t.Helper()
	src := filepath.Join(root, "packaging", "prometheus", "pathagent-rules.yml")
	path, fors, err := promlab.WriteScaledRules(src, dir, promtool)
	if err != nil {
		t.Fatal(err)
	}
	return path, fors
}

func lookup(m *yaml.Node, key string) *yaml.Node { return promlab.Lookup(m, key) }

func scalarValue(n *yaml.Node) string { return promlab.ScalarValue(n) }

func formatDuration(d time.Duration, ratio int64) (string, error) {
	return promlab.FormatDuration(d, ratio)
}

// The shipped rules scale to what the timeline test expects, and promtool
// accepts the result.
func TestScaleShippedRules(t *testing.T) {
	promtool, _ := promlab.Tools(t)
	path, fors := writeScaledRules(t, moduleRoot(t), t.TempDir(), promtool)

	want := map[string]time.Duration{
		"PathagentUnexpectedPath":               20 * time.Second,
		"PathagentS3ThroughNATGateway":          30 * time.Second,
		"PathagentGatewayEndpointNotAssociated": 20 * time.Second,
		"PathagentDown":                         10 * time.Second,
		"PathagentTopologyErrors":               30 * time.Second,
		"PathagentConfigReloadFailed":           10 * time.Second,
	}
	for name, d := range want {
		if fors[name] != d {
			t.Errorf("%s: scaled for %s, want %s", name, fors[name], d)
		}
	}
	if len(fors) != len(want) {
		t.Errorf("scaled fors %v, want %v", fors, want)
	}

	// Names, labels and annotations are as shipped.
	shipped := filepath.Join(moduleRoot(t), "packaging", "prometheus", "pathagent-rules.yml")
	orig, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := unscaledParts(t, orig), unscaledParts(t, data); !reflect.DeepEqual(a, b) {
		t.Errorf("scaling changed more than durations:\nshipped %v\nscaled  %v", a, b)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range lookup(doc.Content[0], "groups").Content {
		if iv := scalarValue(lookup(g, "interval")); iv != "2s" {
			t.Errorf("group %s: interval %q, want 2s", scalarValue(lookup(g, "name")), iv)
		}
		for _, r := range lookup(g, "rules").Content {
			expr := scalarValue(lookup(r, "expr"))
			for _, old := range []string{"[10m]", "[15m]", "offset 10m", "900", "3600"} {
				if strings.Contains(expr, old) {
					t.Errorf("%s: %q left unscaled in %s", scalarValue(lookup(r, "alert")), old, expr)
				}
			}
		}
	}
}

// unscaledParts decodes what scaling must leave alone: each rule's name,
// labels and annotations, in order.
func unscaledParts(t *testing.T, data []byte) []any {
	t.Helper()
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var parts []any
	for _, g := range file.Groups {
		parts = append(parts, g.Name)
		for _, r := range g.Rules {
			parts = append(parts, r.Alert, r.Record, r.Labels, r.Annotations)
		}
	}
	return parts
}
