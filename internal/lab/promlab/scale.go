// Package promlab runs the shipped Prometheus alert rules on a lab's
// faster clock: it divides every duration in a rules file by the same
// factor, so the rules ask the same questions of the same series.
//
// packaging/prometheus/pathagent-rules.yml is written for the agent's
// defaults: a probe cycle every 5 minutes (config.DefaultInterval), scraped
// and evaluated every minute, Prometheus's 5-minute lookback. The lab probes
// every 10 seconds (lab.LabInterval). Dividing every duration by the same
// factor, 5m / 10s = 30, gives rules on a faster clock: a [10m] window
// still spans two probe cycles, a 10m `for` still waits two cycles, an
// evaluation still comes five times a cycle. Nothing else in an expression
// changes, byte for byte, so a wrong join or a missing label shows in a
// lab as it would in a fleet. What is scaled:
//
//   - each group's `interval` and each rule's `for` (and keep_firing_for);
//   - every duration literal in an expression: ranges and subqueries
//     ([10m], [15m:1m]) and offsets (offset 10m);
//   - the plain numbers that are durations in seconds (SecondsLiterals);
//     any other number than 0 and 1 is an error until someone decides
//     which kind it is.
//
// Annotations are left alone: they are text for people, not queries.
package promlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/lab"
)

// The fleet's Prometheus clock the shipped rules assume: a scrape and an
// evaluation every minute, and the default 5-minute lookback.
const (
	FleetScrape   = time.Minute
	FleetLookback = 5 * time.Minute
)

// SecondsLiterals lists, per rule, the numbers in its expression that are
// durations in seconds, as written in the shipped file.
var SecondsLiterals = map[string][]string{
	// 900 s is three missed cycles at the default interval.
	"PathagentProbesStale": {"900"},
	// 3 * 3600 s is two missed hourly topology reads and some jitter.
	// A lab sets topology_refresh to 1m, not the scaled 2m, so the
	// scaled 6m still means "several reads missed".
	"PathagentTopologyStale": {"3 * 3600"},
}

// Ratio is how many times faster the lab's clock runs than the one the
// rules were written for.
func Ratio() (int64, error) {
	if config.DefaultInterval%lab.LabInterval != 0 {
		return 0, fmt.Errorf("lab interval %s does not divide the default interval %s",
			lab.LabInterval, config.DefaultInterval)
	}
	return int64(config.DefaultInterval / lab.LabInterval), nil
}

// WriteScaledRules writes the rules file src, time-scaled by Ratio, into
// dir, has promtool check the result, and returns the new file and each
// alert's scaled `for`.
func WriteScaledRules(src, dir, promtool string) (string, map[string]time.Duration, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", nil, err
	}
	ratio, err := Ratio()
	if err != nil {
		return "", nil, err
	}
	scaled, fors, err := ScaleRules(data, ratio)
	if err != nil {
		return "", nil, fmt.Errorf("scale %s: %w", src, err)
	}

	path := filepath.Join(dir, "pathagent-rules.scaled.yml")
	head := fmt.Sprintf("# %s with every duration divided by %d for a lab.\n", src, ratio)
	if err := os.WriteFile(path, append([]byte(head), scaled...), 0o644); err != nil {
		return "", nil, err
	}

	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("promtool check rules on the scaled rules: %w\n%s", err, out)
	}
	return path, fors, nil
}

// ScaleRules divides every duration in a Prometheus rules file by ratio.
// It returns the new file and the scaled `for` of each alert that has one.
func ScaleRules(data []byte, ratio int64) ([]byte, map[string]time.Duration, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	if len(doc.Content) != 1 {
		return nil, nil, fmt.Errorf("want one YAML document")
	}
	groups := Lookup(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("no groups list")
	}

	fors := map[string]time.Duration{}
	seen := map[string]bool{}
	for _, g := range groups.Content {
		if err := scaleScalar(Lookup(g, "interval"), ratio, nil); err != nil {
			return nil, nil, fmt.Errorf("group interval: %w", err)
		}
		rules := Lookup(g, "rules")
		if rules == nil || rules.Kind != yaml.SequenceNode {
			return nil, nil, fmt.Errorf("group without a rules list")
		}
		for _, r := range rules.Content {
			name := ScalarValue(Lookup(r, "alert")) + ScalarValue(Lookup(r, "record"))
			seen[name] = true
			var d time.Duration
			if err := scaleScalar(Lookup(r, "for"), ratio, &d); err != nil {
				return nil, nil, fmt.Errorf("%s: for: %w", name, err)
			}
			if d > 0 {
				fors[name] = d
			}
			if err := scaleScalar(Lookup(r, "keep_firing_for"), ratio, nil); err != nil {
				return nil, nil, fmt.Errorf("%s: keep_firing_for: %w", name, err)
			}

			expr := Lookup(r, "expr")
			if expr == nil {
				return nil, nil, fmt.Errorf("%s: no expr", name)
			}
			v, err := scaleExpr(expr.Value, ratio, SecondsLiterals[name])
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			expr.Value = v
		}
	}
	for name := range SecondsLiterals {
		if !seen[name] {
			return nil, nil, fmt.Errorf("SecondsLiterals names %s, which is not in the rules", name)
		}
	}

	out, err := yaml.Marshal(&doc)
	return out, fors, err
}

// Lookup returns the value of key in a YAML mapping, or nil.
func Lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// ScalarValue is a node's value; "" for a nil node.
func ScalarValue(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// scaleScalar scales a duration scalar in place; a nil node is left
// alone. The scaled duration goes to *got when got is not nil.
func scaleScalar(n *yaml.Node, ratio int64, got *time.Duration) error {
	if n == nil {
		return nil
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	s, err := FormatDuration(d, ratio)
	if err != nil {
		return err
	}
	n.Value = s
	if got != nil {
		*got = d / time.Duration(ratio)
	}
	return nil
}

// durationRE is one Prometheus duration literal: 10m, 1h30m, 500ms.
const durationRE = `(?:\d+(?:ms|[smhdwy]))+`

var (
	rangeRE  = regexp.MustCompile(`\[([^\[\]]*)\]`)
	rangeArg = regexp.MustCompile(
		`^(\s*)(` + durationRE + `)(\s*)(?::(\s*)(` + durationRE + `)?(\s*))?$`)
	offsetRE     = regexp.MustCompile(`\b(offset\s+-?)(` + durationRE + `)\b`)
	numberRE     = regexp.MustCompile(`(^|[^\w.:])(\d[\w.]*)`)
	wholeDurRE   = regexp.MustCompile(`^` + durationRE + `$`)
	durationPart = regexp.MustCompile(`(\d+)(ms|[smhdwy])`)
)

// scaleExpr divides by ratio every duration in a PromQL expression: range
// and subquery durations, offsets, and the listed literals, which are
// durations in seconds. String literals and comments are left alone. A
// number other than 0, 1 and the listed ones is an error, as is a listed
// literal the expression lacks.
func scaleExpr(expr string, ratio int64, seconds []string) (string, error) {
	found := map[string]bool{}
	out, err := mapCode(expr, func(code string) (string, error) {
		var errs []error
		scaled := rangeRE.ReplaceAllStringFunc(code, func(r string) string {
			m := rangeArg.FindStringSubmatch(r[1 : len(r)-1])
			if m == nil {
				errs = append(errs, fmt.Errorf("range %s: not a duration", r))
				return r
			}
			out := "[" + m[1] + scaleLiteral(m[2], ratio, &errs) + m[3]
			if strings.Contains(r, ":") {
				out += ":" + m[4]
				if m[5] != "" {
					out += scaleLiteral(m[5], ratio, &errs)
				}
				out += m[6]
			}
			return out + "]"
		})
		scaled = offsetRE.ReplaceAllStringFunc(scaled, func(o string) string {
			m := offsetRE.FindStringSubmatch(o)
			return m[1] + scaleLiteral(m[2], ratio, &errs)
		})

		// The numbers left once durations and the listed literals are
		// taken out must be 0 or 1: comparisons with "false" and "true".
		rest := offsetRE.ReplaceAllString(rangeRE.ReplaceAllString(code, "[]"), "offset")
		for _, lit := range seconds {
			re := literalRE(lit)
			if re.MatchString(rest) {
				found[lit] = true
			}
			rest = re.ReplaceAllString(rest, "${1}_${2}")
			scaled = re.ReplaceAllStringFunc(scaled, func(s string) string {
				m := re.FindStringSubmatch(s)
				return m[1] + scaleSeconds(lit, ratio, &errs) + m[2]
			})
		}
		for _, m := range numberRE.FindAllStringSubmatch(rest, -1) {
			if m[2] != "0" && m[2] != "1" {
				errs = append(errs, fmt.Errorf("number %s: add it to SecondsLiterals if it is "+
					"a duration in seconds, or allow it here if not", m[2]))
			}
		}
		if len(errs) > 0 {
			return "", errs[0]
		}
		return scaled, nil
	})
	if err != nil {
		return "", err
	}
	for _, lit := range seconds {
		if !found[lit] {
			return "", fmt.Errorf("seconds literal %q not in the expression", lit)
		}
	}
	return out, nil
}

// literalRE matches lit as a whole, not as part of a longer number or name.
func literalRE(lit string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[^\w.])` + regexp.QuoteMeta(lit) + `([^\w.]|$)`)
}

// mapCode applies f to the parts of a PromQL expression outside string
// literals and comments, and copies those through unchanged.
func mapCode(expr string, f func(string) (string, error)) (string, error) {
	var b strings.Builder
	start := 0
	flush := func(end int) error {
		s, err := f(expr[start:end])
		b.WriteString(s)
		return err
	}
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '"' && c != '\'' && c != '`' && c != '#' {
			continue
		}
		if err := flush(i); err != nil {
			return "", err
		}
		j := i + 1
		switch c {
		case '#':
			for j < len(expr) && expr[j] != '\n' {
				j++
			}
		default:
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return "", fmt.Errorf("unterminated string at offset %d", i)
			}
			j++
		}
		b.WriteString(expr[i:j])
		start, i = j, j-1
	}
	if err := flush(len(expr)); err != nil {
		return "", err
	}
	return b.String(), nil
}

func scaleLiteral(s string, ratio int64, errs *[]error) string {
	d, err := parseDuration(s)
	if err == nil {
		s, err = FormatDuration(d, ratio)
	}
	if err != nil {
		*errs = append(*errs, err)
	}
	return s
}

// scaleSeconds divides a literal such as "900" or "3 * 3600" by ratio and
// writes the result as one number.
func scaleSeconds(lit string, ratio int64, errs *[]error) string {
	v := 1.0
	for _, f := range strings.Split(lit, "*") {
		n, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("seconds literal %q: %w", lit, err))
			return lit
		}
		v *= n
	}
	return strconv.FormatFloat(v/float64(ratio), 'f', -1, 64)
}

var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
	"y":  365 * 24 * time.Hour,
}

// parseDuration reads a Prometheus duration, which unlike Go's has d, w
// and y and no fractions.
func parseDuration(s string) (time.Duration, error) {
	if !wholeDurRE.MatchString(s) {
		return 0, fmt.Errorf("%q is not a Prometheus duration", s)
	}
	var d time.Duration
	for _, m := range durationPart.FindAllStringSubmatch(s, -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		d += time.Duration(n) * durationUnits[m[2]]
	}
	return d, nil
}

// FormatDuration writes d/ratio in the largest single unit that holds it
// exactly; Prometheus durations have no fractions.
func FormatDuration(d time.Duration, ratio int64) (string, error) {
	r := time.Duration(ratio)
	if d%r != 0 || (d/r)%time.Millisecond != 0 || d/r == 0 {
		return "", fmt.Errorf("%s / %d is not a whole number of milliseconds", d, ratio)
	}
	d /= r
	for _, u := range []string{"h", "m", "s", "ms"} {
		if d%durationUnits[u] == 0 {
			return fmt.Sprintf("%d%s", d/durationUnits[u], u), nil
		}
	}
	panic("unreachable: every whole number of milliseconds has a unit")
}
