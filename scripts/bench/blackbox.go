package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
)

// blackboxModule probes the lab's S3 front over plain HTTP, as a Prometheus
// user would watch S3 with blackbox_exporter: a GET that must answer 200.
const blackboxModule = `modules:
  s3_http:
    prober: http
    timeout: 5s
    http:
      method: GET
      valid_status_codes: [200]
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
`

// settle is how long a freshly started process is left before its idle
// memory is read, so that start-up allocations have been made.
const settle = 500 * time.Millisecond

// serviceCost is a long-running prober's memory and CPU over a number of
// probes.
type serviceCost struct {
	idle   procSample // after start, before any probe
	after  procSample // after the last probe
	probes float64
	took   time.Duration // first probe to last
}

func (c serviceCost) cpuPerProbe() time.Duration {
	if c.probes == 0 {
		return 0
	}
	return time.Duration(float64(c.after.cpu-c.idle.cpu) / c.probes)
}

// versusResult is the daemon against blackbox_exporter at the same rate.
type versusResult struct {
	buckets   int
	interval  time.Duration
	rate      float64 // probes per second, both sides
	pathagent serviceCost
	blackbox  serviceCost

	// The EC2 calls the daemon made over the run, for the fleet
	// arithmetic.
	ec2Calls        float64
	topologyReads   float64
	topologyRefresh time.Duration
	ran             time.Duration
}

// benchVersus runs the daemon over enough buckets and cycles for o.probes
// probes and, at the same time and the same average rate, blackbox_exporter
// probing the same S3 front; it returns both sides' memory and CPU.
func benchVersus(ctx context.Context, o *options, l *lab.Lab, dir string, buckets []string) (*versusResult, error) {
	const ops = 4 // list, put, get, delete
	perCycle := o.daemonBuckets * ops
	cycles := (o.probes + perCycle - 1) / perCycle
	r := &versusResult{
		buckets:  o.daemonBuckets,
		interval: o.interval,
		rate:     float64(perCycle) / o.interval.Seconds(),
		// The shortest refresh allowed, so that the run sees the
		// first read and at least one refresh.
		topologyRefresh: time.Minute,
	}

	cfg := configPath(dir, "versus.yaml")
	err := writeDaemonConfig(l, cfg, daemonConfig{
		buckets:         buckets[:o.daemonBuckets],
		interval:        o.interval,
		maxConcurrent:   4,
		topologyRefresh: r.topologyRefresh,
	})
	if err != nil {
		return nil, err
	}

	var wg sync.WaitGroup
	var bbErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.blackbox, bbErr = runBlackbox(ctx, o, frontURL(l, 0)+"/_health", cycles*perCycle, r.rate, dir)
	}()

	start := time.Now()
	d, err := startDaemon(ctx, o, l, cfg)
	if err != nil {
		wg.Wait()
		return nil, err
	}
	defer d.stop()
	if r.pathagent.idle, err = sampleProc(d.pid()); err != nil {
		return nil, err
	}
	var first time.Time
	for i := range cycles {
		ev, err := d.waitCycle(ctx, 3*o.interval+time.Minute)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			first = time.Now().Add(-ev.took)
		}
		r.pathagent.after = ev.sample
		fmt.Fprintf(os.Stderr, "bench: versus: pathagent cycle %d of %d took %s\n",
			i+1, cycles, ev.took.Round(time.Millisecond))
	}
	r.pathagent.took = time.Since(first)
	r.ran = time.Since(start)

	m, err := getMetrics(ctx, d.url)
	if err != nil {
		return nil, err
	}
	r.pathagent.probes = m.sum("pathagent_probes_total")
	r.ec2Calls = m.sum("pathagent_ec2_api_calls_total")
	r.topologyReads = m.sum("pathagent_topology_refreshes_total")

	wg.Wait()
	if bbErr != nil {
		return nil, bbErr
	}
	return r, nil
}

// runBlackbox starts blackbox_exporter, reads its idle memory, then asks it
// for n probes of target at rate per second, one at a time as Prometheus
// would send them, and reads its memory and CPU again.
func runBlackbox(ctx context.Context, o *options, target string, n int, rate float64, dir string) (serviceCost, error) {
	var c serviceCost
	cfg := configPath(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, []byte(blackboxModule), 0o644); err != nil {
		return c, fmt.Errorf("write blackbox config: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return c, err
	}
	cmd := exec.Command(o.blackbox,
		"--config.file="+cfg,
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return c, fmt.Errorf("start blackbox_exporter: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	base := "http://" + addr
	if err := waitHealthy(ctx, base+"/-/healthy", exited); err != nil {
		return c, fmt.Errorf("blackbox_exporter: %w", err)
	}

	time.Sleep(settle)
	if c.idle, err = sampleProc(cmd.Process.Pid); err != nil {
		return c, err
	}

	probeURL := base + "/probe?module=s3_http&target=" + url.QueryEscape(target)
	every := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	for i := range n {
		if err := blackboxProbe(ctx, probeURL); err != nil {
			return c, fmt.Errorf("blackbox probe %d: %w", i+1, err)
		}
		if i%int(math.Max(1, float64(n/5))) == 0 {
			fmt.Fprintf(os.Stderr, "bench: versus: blackbox probe %d of %d\n", i+1, n)
		}
		if i < n-1 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return c, ctx.Err()
			}
		}
	}
	c.took = time.Since(start)
	c.probes = float64(n)
	if c.after, err = sampleProc(cmd.Process.Pid); err != nil {
		return c, err
	}
	return c, nil
}

func blackboxProbe(ctx context.Context, probeURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probeURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), "\nprobe_success 1\n") {
		return fmt.Errorf("probe failed:\n%s", lastLines(string(body), 8))
	}
	return nil
}
