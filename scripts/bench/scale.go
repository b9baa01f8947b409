package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
)

// scrapes is how many times /metrics is fetched for its median time.
const scrapes = 5

// scaleResult is the daemon over one number of buckets.
type scaleResult struct {
	buckets int

	// first and second are the first two cycles: the first reads the
	// identity and topology, the second runs on the cached ones.
	first, second cycleEvent

	// cpu is the daemon's CPU time over the second cycle.
	cpu time.Duration

	series      int
	scrapeBytes int
	scrapeTime  time.Duration
	skipped     float64
}

// benchScale runs the daemon over each number of buckets for two cycles at
// a fixed interval and concurrency, then scrapes it.
func benchScale(ctx context.Context, o *options, l *lab.Lab, dir string, buckets []string) ([]scaleResult, error) {
	var out []scaleResult
	for _, n := range o.scale {
		cfg := configPath(dir, fmt.Sprintf("scale-%d.yaml", n))
		err := writeDaemonConfig(l, cfg, daemonConfig{
			buckets:       buckets[:n],
			interval:      o.interval,
			maxConcurrent: 4,
		})
		if err != nil {
			return nil, err
		}
		r, err := scaleOnce(ctx, o, l, cfg, n)
		if err != nil {
			return nil, fmt.Errorf("scale %d buckets: %w", n, err)
		}
		fmt.Fprintf(os.Stderr, "bench: scale: %d buckets: cycle %s, %d series\n",
			n, r.second.took.Round(time.Millisecond), r.series)
		out = append(out, r)
	}
	return out, nil
}

func scaleOnce(ctx context.Context, o *options, l *lab.Lab, cfg string, n int) (scaleResult, error) {
	r := scaleResult{buckets: n}
	d, err := startDaemon(ctx, o, l, cfg)
	if err != nil {
		return r, err
	}
	defer d.stop()

	// A cycle over many buckets may outlast the interval; the next one
	// then waits for the tick after it ends.
	limit := 2*o.interval + 10*time.Minute
	if r.first, err = d.waitCycle(ctx, limit); err != nil {
		return r, err
	}
	if r.second, err = d.waitCycle(ctx, limit); err != nil {
		return r, err
	}
	r.cpu = r.second.sample.cpu - r.first.sample.cpu

	var took []time.Duration
	for range scrapes {
		s, err := getMetrics(ctx, d.url)
		if err != nil {
			return r, err
		}
		took = append(took, s.took)
		r.series, r.scrapeBytes = s.series, s.bytes
		r.skipped = s.sum("pathagent_cycles_skipped_total")
	}
	r.scrapeTime = median(took)
	return r, nil
}
