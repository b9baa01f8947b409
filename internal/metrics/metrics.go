// Package metrics exposes what the daemon observes as Prometheus metrics.
// docs/metrics.md is the contract: names, types, labels and meaning.
package metrics

import (
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pathagent/pathagent/internal/report"
)

const ns = "pathagent"

// Metrics holds every pathagent collector, registered on its own registry.
// Its methods are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	probeSuccess  *prometheus.GaugeVec
	probeDuration *prometheus.GaugeVec
	probes        *prometheus.CounterVec
	probeFailures *prometheus.CounterVec

	reachable     *prometheus.GaugeVec
	failureReason *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec

	pathInfo     *prometheus.GaugeVec
	pathExpected *prometheus.GaugeVec
	pathChanges  *prometheus.CounterVec
	finding      *prometheus.GaugeVec

	cycles        prometheus.Counter
	cyclesSkipped prometheus.Counter
	cycleDuration prometheus.Gauge
	lastCycle     prometheus.Gauge

	topologyRefreshes *prometheus.CounterVec
	topologyErrors    *prometheus.CounterVec
	ec2Calls          *prometheus.CounterVec
	imdsErrors        *prometheus.CounterVec

	reloadOK      prometheus.Gauge
	reloadSuccess prometheus.Gauge

	// mu guards the state that decides which series to delete: the
	// last path and findings per bucket, and the buckets seen.
	mu           sync.Mutex
	paths        map[string]prometheus.Labels
	expected     map[string]string            // bucket -> expected label in use
	findings     map[string]prometheus.Labels // by joined label values
	reasons      map[string]string
	buckets      map[string]bool
	topologyTime time.Time
}

// BuildInfo is what pathagent_build_info reports.
type BuildInfo struct {
	Version  string
	Revision string
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on a new registry.
func New(build BuildInfo) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		paths:    map[string]prometheus.Labels{},
		expected: map[string]string{},
		findings: map[string]prometheus.Labels{},
		reasons:  map[string]string{},
		buckets:  map[string]bool{},
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}

	m.probeSuccess = gauge("probe_success", "Whether the last probe of the operation succeeded (1) or failed (0).", "bucket", "op")
	m.probeDuration = gauge("probe_duration_seconds", "Duration of the last probe of the operation, connect to last byte.", "bucket", "op")
	m.probes = counter("probes_total", "Probes sent.", "bucket", "op")
	m.probeFailures = counter("probe_failures_total", "Failed probes, by reason.", "bucket", "op", "reason")

	m.reachable = gauge("bucket_reachable", "Whether every probe of the bucket's last cycle succeeded.", "bucket")
	m.failureReason = gauge("bucket_failure_reason", "The reason of the last cycle's first failed probe; absent when reachable.", "bucket", "reason")
	m.lastSuccess = gauge("bucket_last_success_timestamp_seconds", "Unix time of the last cycle in which every probe of the bucket succeeded.", "bucket")

	m.pathInfo = gauge("path_info", "The path the bucket's traffic takes; always 1.", "bucket", "kind", "target", "route_table")
	m.pathExpected = gauge("path_expected", "Whether the bucket's path is of its configured expected kind.", "bucket", "expected")
	m.pathChanges = counter("path_changes_total", "Times the bucket's path kind or target changed.", "bucket")
	m.finding = gauge("finding", "A finding of the last cycle; always 1.", "bucket", "code", "finding_severity")

	m.cycles = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "cycles_total", Help: "Probe cycles run."})
	m.cyclesSkipped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "cycles_skipped_total", Help: "Cycles not started because the previous one was still running."})
	m.cycleDuration = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "cycle_duration_seconds", Help: "Duration of the last probe cycle."})
	m.lastCycle = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_cycle_timestamp_seconds", Help: "Unix time the last probe cycle ended."})

	m.topologyRefreshes = counter("topology_refreshes_total", "Reads of the route table, endpoints and prefix lists, by result.", "result")
	m.topologyErrors = counter("topology_refresh_errors_total", "Failed EC2 calls, by call and reason.", "call", "reason")
	m.ec2Calls = counter("ec2_api_calls_total", "EC2 API calls made.", "call")
	m.imdsErrors = counter("imds_errors_total", "Failed reads of the instance identity, by reason.", "reason")

	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_successful", Help: "Whether the last configuration load succeeded."})
	m.reloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful configuration load."})

	topologyAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Name: "topology_age_seconds",
		Help: "Seconds since the topology was last read in full.",
	}, m.topologyAge)

	// Both results exist from the start, so that increase() sees the
	// first error.
	m.topologyRefreshes.WithLabelValues("success")
	m.topologyRefreshes.WithLabelValues("error")

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info", Help: "Build information; always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(build.Version, build.Revision, runtime.Version()).Set(1)

	m.Registry.MustRegister(
		m.probeSuccess, m.probeDuration, m.probes, m.probeFailures,
		m.reachable, m.failureReason, m.lastSuccess,
		m.pathInfo, m.pathExpected, m.pathChanges, m.finding,
		m.cycles, m.cyclesSkipped, m.cycleDuration, m.lastCycle,
		m.topologyRefreshes, m.topologyErrors, m.ec2Calls, m.imdsErrors,
		m.reloadOK, m.reloadSuccess, topologyAge, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// topologyAge reports the topology's age; before the first full read it
// reports NaN, which Prometheus drops from most expressions, rather than a
// misleading number.
func (m *Metrics) topologyAge() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.topologyTime.IsZero() {
		return nan()
	}
	return time.Since(m.topologyTime).Seconds()
}

// ObserveCycle records one probe cycle's report.
func (m *Metrics) ObserveCycle(rep *report.Report, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()

	now := time.Now()
	m.cycles.Inc()
	m.cycleDuration.Set(took.Seconds())
	m.lastCycle.Set(float64(now.UnixNano()) / 1e9)

	current := map[string]bool{}
	for _, b := range rep.Buckets {
		current[b.Name] = true
		m.observeBucket(b, now)
	}
	// A bucket dropped from the configuration takes its series along.
	for name := range m.buckets {
		if !current[name] {
			m.forgetBucket(name)
		}
	}
	m.buckets = current

	m.observeFindings(rep.Findings)
}

func (m *Metrics) observeBucket(b report.Bucket, now time.Time) {
	ok := true
	reason := ""
	for _, p := range b.Probes {
		if p.Skipped {
			// Not sent: unknown, which is not the same as failed.
			m.probeSuccess.DeleteLabelValues(b.Name, p.Op)
			continue
		}
		m.probes.WithLabelValues(b.Name, p.Op).Inc()
		m.probeDuration.WithLabelValues(b.Name, p.Op).Set(p.LatencyS)
		if p.Success {
			m.probeSuccess.WithLabelValues(b.Name, p.Op).Set(1)
			continue
		}
		m.probeSuccess.WithLabelValues(b.Name, p.Op).Set(0)
		m.probeFailures.WithLabelValues(b.Name, p.Op, p.Reason).Inc()
		if ok {
			ok, reason = false, p.Reason
		}
	}

	if old, had := m.reasons[b.Name]; had && old != reason {
		m.failureReason.DeleteLabelValues(b.Name, old)
		delete(m.reasons, b.Name)
	}
	if ok {
		m.reachable.WithLabelValues(b.Name).Set(1)
		m.lastSuccess.WithLabelValues(b.Name).Set(float64(now.UnixNano()) / 1e9)
	} else {
		m.reachable.WithLabelValues(b.Name).Set(0)
		m.failureReason.WithLabelValues(b.Name, reason).Set(1)
		m.reasons[b.Name] = reason
	}

	m.observePath(b)
}

func (m *Metrics) observePath(b report.Bucket) {
	labels := prometheus.Labels{
		"bucket":      b.Name,
		"kind":        b.Path.Kind,
		"target":      b.Path.Target,
		"route_table": b.Path.RouteTableID,
	}
	if old, had := m.paths[b.Name]; had {
		if old["kind"] != labels["kind"] || old["target"] != labels["target"] {
			m.pathChanges.WithLabelValues(b.Name).Inc()
		}
		m.pathInfo.Delete(old)
	} else {
		// Created at zero so that the first change is an increase.
		m.pathChanges.WithLabelValues(b.Name)
	}
	m.pathInfo.With(labels).Set(1)
	m.paths[b.Name] = labels

	// One series per bucket: a changed expectation replaces the old.
	// Deleting by the remembered label keeps a cycle linear in buckets.
	if old, had := m.expected[b.Name]; had && old != b.ExpectPath {
		m.pathExpected.DeleteLabelValues(b.Name, old)
		delete(m.expected, b.Name)
	}
	if b.ExpectPath == "" {
		return
	}
	m.expected[b.Name] = b.ExpectPath
	v := 0.0
	if b.Path.Kind == b.ExpectPath {
		v = 1
	}
	m.pathExpected.WithLabelValues(b.Name, b.ExpectPath).Set(v)
}

func (m *Metrics) observeFindings(fs []report.Finding) {
	now := map[string]prometheus.Labels{}
	for _, f := range fs {
		l := prometheus.Labels{"bucket": f.Bucket, "code": f.Code, "finding_severity": string(f.Severity)}
		now[f.Bucket+"\x00"+f.Code+"\x00"+string(f.Severity)] = l
	}
	for k, l := range m.findings {
		if _, still := now[k]; !still {
			m.finding.Delete(l)
		}
	}
	for _, l := range now {
		m.finding.With(l).Set(1)
	}
	m.findings = now
}

func (m *Metrics) forgetBucket(name string) {
	match := prometheus.Labels{"bucket": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{
		m.probeSuccess, m.probeDuration, m.probes, m.probeFailures,
		m.reachable, m.failureReason, m.lastSuccess,
		m.pathInfo, m.pathExpected, m.pathChanges,
	} {
		v.DeletePartialMatch(match)
	}
	delete(m.paths, name)
	delete(m.reasons, name)
	delete(m.expected, name)
}

// CycleSkipped counts a cycle that was not started.
func (m *Metrics) CycleSkipped() { m.cyclesSkipped.Inc() }

// TopologyRefreshed records a topology read: its failed calls, by call and
// reason, and its time when it was complete.
func (m *Metrics) TopologyRefreshed(at time.Time, failed []CallError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(failed) == 0 {
		m.topologyRefreshes.WithLabelValues("success").Inc()
		m.topologyTime = at
		return
	}
	m.topologyRefreshes.WithLabelValues("error").Inc()
	for _, f := range failed {
		m.topologyErrors.WithLabelValues(f.Call, f.Reason).Inc()
	}
}

// CallError is one failed EC2 call, its reason one of unauthorized,
// throttled or other.
type CallError struct {
	Call   string
	Reason string
}

// EC2Call counts one EC2 API call.
func (m *Metrics) EC2Call(call string) { m.ec2Calls.WithLabelValues(call).Inc() }

// IMDSError counts a failed identity read; reason is one of no_token,
// unreachable, disabled or other.
func (m *Metrics) IMDSError(reason string) { m.imdsErrors.WithLabelValues(reason).Inc() }

// ConfigLoaded records a configuration load, successful or not.
func (m *Metrics) ConfigLoaded(ok bool) {
	if !ok {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadSuccess.SetToCurrentTime()
}

func nan() float64 { return math.NaN() }
