package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
)

const (
	// readyWait bounds a daemon's or exporter's start: both answer in
	// well under a second.
	readyWait = 15 * time.Second

	// stopWait lets a daemon finish the cycle in flight after SIGTERM,
	// as it does under systemd, before it is killed.
	stopWait = time.Minute

	// logLineMax holds a cycle's summary line, which names every
	// bucket's path: about 40 bytes a bucket.
	logLineMax = 4 << 20
)

// daemonConfig is what a benchmark's `pathagent run` is given.
type daemonConfig struct {
	buckets         []string
	interval        time.Duration
	maxConcurrent   int
	topologyRefresh time.Duration // zero: the default
}

// writeDaemonConfig writes a configuration that reaches the lab as the
// lab's own does, with the given buckets and timings.
func writeDaemonConfig(l *lab.Lab, path string, c daemonConfig) error {
	var b strings.Builder
	b.WriteString("buckets:\n")
	for _, name := range c.buckets {
		fmt.Fprintf(&b, "  - %s\n", name)
	}
	fmt.Fprintf(&b, "resolver: %q\n", l.DNS.Addr())
	fmt.Fprintf(&b, "s3_endpoint: %q\n", l.S3Endpoint())
	b.WriteString("path_style: true\n")
	fmt.Fprintf(&b, "interval: %s\n", c.interval)
	fmt.Fprintf(&b, "max_concurrent: %d\n", c.maxConcurrent)
	if c.topologyRefresh > 0 {
		fmt.Fprintf(&b, "topology_refresh: %s\n", c.topologyRefresh)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write daemon config: %w", err)
	}
	return nil
}

// cycleEvent is one finished cycle, from the daemon's summary log line,
// with the process sampled as the line arrived.
type cycleEvent struct {
	took    time.Duration
	status  string
	buckets int
	sample  procSample
}

// daemonProc is a running `pathagent run`.
type daemonProc struct {
	cmd    *exec.Cmd
	url    string
	cycles chan cycleEvent
	exited chan struct{}
}

// startDaemon runs `pathagent run` in the lab's environment, logging JSON so
// that each cycle's summary line can be read, and waits until it answers.
func startDaemon(ctx context.Context, o *options, l *lab.Lab, configPath string) (*daemonProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.pathagent, "run",
		"--config", configPath,
		"--web.listen-address", addr,
		"--log-format", "json")
	cmd.Env = append(lab.CleanEnv(os.Environ()), l.Env()...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start pathagent run: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pathagent run: %w", err)
	}
	d := &daemonProc{
		cmd:    cmd,
		url:    "http://" + addr,
		cycles: make(chan cycleEvent, 1024),
		exited: make(chan struct{}),
	}
	go d.readLog(stderr)
	go func() {
		cmd.Wait()
		close(d.exited)
	}()

	if err := waitHealthy(ctx, d.url+"/-/healthy", d.exited); err != nil {
		d.stop()
		return nil, fmt.Errorf("pathagent run: %w", err)
	}
	return d, nil
}

// readLog turns the daemon's cycle lines into events and passes the rest
// through when they are warnings or errors.
func (d *daemonProc) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), logLineMax)
	for sc.Scan() {
		var line struct {
			Level    string `json:"level"`
			Msg      string `json:"msg"`
			Status   string `json:"status"`
			Buckets  int    `json:"buckets"`
			Duration int64  `json:"duration"` // nanoseconds
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Msg != "cycle" {
			if line.Level == "WARN" || line.Level == "ERROR" {
				fmt.Fprintf(os.Stderr, "bench: pathagent run: %s\n", sc.Text())
			}
			continue
		}
		s, _ := sampleProc(d.cmd.Process.Pid)
		d.cycles <- cycleEvent{
			took:    time.Duration(line.Duration),
			status:  line.Status,
			buckets: line.Buckets,
			sample:  s,
		}
	}
	close(d.cycles)
}

// waitCycle returns the next finished cycle.
func (d *daemonProc) waitCycle(ctx context.Context, limit time.Duration) (cycleEvent, error) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case ev, ok := <-d.cycles:
		if !ok {
			return ev, errors.New("pathagent run exited")
		}
		if ev.status != "ok" {
			return ev, fmt.Errorf("pathagent run: cycle status %s", ev.status)
		}
		return ev, nil
	case <-t.C:
		return cycleEvent{}, fmt.Errorf("pathagent run: no cycle within %s", limit)
	case <-ctx.Done():
		return cycleEvent{}, ctx.Err()
	}
}

func (d *daemonProc) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and waits for the cycle in flight to finish, as
// systemd would; a daemon that does not exit in time is killed.
func (d *daemonProc) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(stopWait):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// scrape is one GET of /metrics.
type scrape struct {
	took   time.Duration
	bytes  int
	series int
	values map[string]float64 // each series' value, by its line's name and labels
}

func getMetrics(ctx context.Context, url string) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return scrape{}, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("scrape %s: status %d: %v", url, resp.StatusCode, err)
	}

	s := scrape{took: took, bytes: len(body), values: map[string]float64{}}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s.series++
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			s.values[line[:i]] = v
		}
	}
	return s, nil
}

// sum adds up every series of a metric whose line holds all of the given
// label pairs (written name="value").
func (s scrape) sum(name string, labels ...string) float64 {
	total := 0.0
	for series, v := range s.values {
		metric, _, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if all {
			total += v
		}
	}
	return total
}

// waitHealthy polls url until it answers 200, the process exits or
// readyWait passes.
func waitHealthy(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it answered")
		case <-ctx.Done():
			return fmt.Errorf("not answering at %s: %w", url, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// configPath names a file in the benchmark's directory.
func configPath(dir, name string) string { return filepath.Join(dir, name) }
