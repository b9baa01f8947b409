package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pathagent/pathagent/internal/report"
)

// benchReport is one cycle's report over n buckets through a gateway
// endpoint; every tenth bucket's put is denied, with a finding, so that the
// failure series exist too.
func benchReport(n int) *report.Report {
	rep := &report.Report{}
	for i := range n {
		name := fmt.Sprintf("bench-bucket-%04d", i)
		b := report.Bucket{
			Name:       name,
			Region:     "us-east-1",
			ExpectPath: "gateway_endpoint",
			Path:       report.Path{Kind: "gateway_endpoint", Target: "vpce-0gw", RouteTableID: "rtb-0private"},
		}
		for _, op := range []string{"list", "put", "get", "delete"} {
			p := report.Probe{Op: op, Success: true, LatencyS: 0.004}
			if i%10 == 9 {
				switch op {
				case "put":
					p.Success, p.Reason = false, "access_denied"
				case "get":
					p = report.Probe{Op: op, Skipped: true}
				}
			}
			b.Probes = append(b.Probes, p)
		}
		if i%10 == 9 {
			rep.Findings = append(rep.Findings, report.Finding{
				Code: "probe_failed", Severity: report.Critical, Bucket: name,
			})
		}
		rep.Buckets = append(rep.Buckets, b)
	}
	return rep
}

var benchSizes = []int{1, 100, 1000}

// BenchmarkObserveCycle records one cycle's report on metrics that have
// seen the same buckets before, as in steady state.
func BenchmarkObserveCycle(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("buckets=%d", n), func(b *testing.B) {
			m := New(BuildInfo{Version: "bench"})
			rep := benchReport(n)
			m.ObserveCycle(rep, time.Second)
			b.ReportAllocs()
			for b.Loop() {
				m.ObserveCycle(rep, time.Second)
			}
		})
	}
}

// BenchmarkScrape serves /metrics as `pathagent run` does, after a cycle
// over n buckets.
func BenchmarkScrape(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("buckets=%d", n), func(b *testing.B) {
			m := New(BuildInfo{Version: "bench"})
			m.ObserveCycle(benchReport(n), time.Second)
			benchServe(b, m.Registry)
		})
	}
}

// BenchmarkScrapeBaseline is the peer BenchmarkScrape is read against: a
// registry with only the Go runtime and process collectors, what any Go
// exporter (blackbox_exporter among them) serves on its own.
func BenchmarkScrapeBaseline(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	benchServe(b, reg)
}

func benchServe(b *testing.B, reg *prometheus.Registry) {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
