package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// pollEvery is how often the test asks Prometheus: small against the 2s
// evaluation interval, so the times recorded are the API's, not the
// test's.
const pollEvery = 250 * time.Millisecond

// notSeen marks a moment of a step that has not been observed (or cannot
// be: an alert without `for` is never pending).
const notSeen time.Duration = -1

// step is one change of the lab's world and what Prometheus's API showed
// after it, each moment as the time since the change.
type step struct {
	change string        // what the lab changed
	alert  string        // the alert expected to follow
	bound  time.Duration // the latest the step's last moment may come
	why    string        // how the bound was chosen, in a few words

	at                                time.Time
	metric, pending, firing, resolved time.Duration

	// others are the other alerts seen active during the step, with the
	// last state seen.
	others map[string]string
}

// timeline is the steps of a test run, in order.
type timeline struct {
	header []string
	steps  []*step
}

// begin adds a step; its clock starts at the call of changed.
func (tl *timeline) begin(change, alert string, bound time.Duration, why string) *step {
	st := &step{
		change: change, alert: alert, bound: bound, why: why,
		metric: notSeen, pending: notSeen, firing: notSeen, resolved: notSeen,
		others: map[string]string{},
	}
	tl.steps = append(tl.steps, st)
	return st
}

// changed marks the moment the world changed.
func (st *step) changed() { st.at = time.Now() }

// mark records the time since the change in *d, the first time only.
func (st *step) mark(d *time.Duration) {
	if *d == notSeen {
		*d = time.Since(st.at)
	}
}

func (st *step) String() string {
	return fmt.Sprintf("%s: metric %s, pending %s, firing %s, resolved %s (bound %s)",
		st.change, secs(st.metric), secs(st.pending), secs(st.firing), secs(st.resolved), st.bound)
}

func secs(d time.Duration) string {
	if d == notSeen {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// String formats the timeline as a table for a note.
func (tl *timeline) String() string {
	var b strings.Builder
	for _, h := range tl.header {
		b.WriteString(h + "\n")
	}
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "step\tworld change\talert\tmetric\tpending\tfiring\tresolved\tbound")
	for i, st := range tl.steps {
		if st.at.IsZero() {
			continue
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s (%s)\n", i+1, st.change, st.alert,
			secs(st.metric), secs(st.pending), secs(st.firing), secs(st.resolved),
			secs(st.bound), st.why)
	}
	w.Flush()
	for i, st := range tl.steps {
		if len(st.others) == 0 {
			continue
		}
		var others []string
		for name, state := range st.others {
			others = append(others, name+" ("+state+")")
		}
		sort.Strings(others)
		fmt.Fprintf(&b, "step %d, also active: %s\n", i+1, strings.Join(others, ", "))
	}
	return b.String()
}

// report logs the timeline and, when PATHAGENT_E2E_TIMELINE names a file,
// writes it there too. It runs in cleanup, so a failed run still shows
// how far it got.
func (tl *timeline) report(t *testing.T) {
	text := tl.String()
	t.Logf("timeline:\n%s", text)
	if path := os.Getenv("PATHAGENT_E2E_TIMELINE"); path != "" {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Errorf("write timeline: %v", err)
		}
	}
}

// watch polls Prometheus after a step's change until the step's alert,
// with labels including want, is firing (heal false) or gone (heal true),
// and until the query metric, which shows the changed world in the agent's
// own series, returns a series. It fails the test when the step's bound
// passes first, or when the agent exits.
func watch(t *testing.T, p *prom, agent *child, st *step,
	metric string, want map[string]string, heal bool) {
	t.Helper()
	deadline := st.at.Add(st.bound)
	var last []alert
	var lastErr error
	for time.Now().Before(deadline) {
		agent.alive(t)
		p.alive(t)

		ok, err := p.has(metric)
		if err != nil {
			lastErr = err
		} else if ok {
			st.mark(&st.metric)
		}

		alerts, err := p.alerts()
		if err != nil {
			lastErr = err
			time.Sleep(pollEvery)
			continue
		}
		last = alerts
		for _, a := range alerts {
			if a.Labels["alertname"] != st.alert {
				st.others[a.Labels["alertname"]] = a.State
			}
		}

		a, found := find(alerts, st.alert, want)
		switch {
		case !heal && found && a.State == "pending":
			st.mark(&st.pending)
		case !heal && found && a.State == "firing":
			st.mark(&st.firing)
		case heal && !found:
			st.mark(&st.resolved)
		}
		if st.metric != notSeen && (heal && st.resolved != notSeen || !heal && st.firing != notSeen) {
			return
		}
		time.Sleep(pollEvery)
	}

	var active []string
	for _, a := range last {
		active = append(active, a.String())
	}
	t.Fatalf("step %q: not done within %s: %s\nwaiting for %s %v (heal %t) and %s\n"+
		"active alerts:\n  %s\nlast API error: %v",
		st.change, st.bound, st, st.alert, want, heal, metric,
		strings.Join(active, "\n  "), lastErr)
}
