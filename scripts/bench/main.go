// Command bench measures pathagent against peers run side by side on this
// machine, the same work on the same lab, and writes the results as
// Markdown: every figure that matters is a ratio to its peer, so a busier or
// slower machine moves both sides alike. `make bench` runs it.
//
//  1. `pathagent once` against the AWS CLI and rclone doing the same S3 job.
//  2. `pathagent run` against blackbox_exporter probing the same server at
//     the same rate: memory idle and after the probes, CPU per probe.
//  3. The daemon over 1, 100 and 1,000 buckets.
//  4. Go benchmarks of route matching, classification and scraping.
//  5. The EC2 API budget of a fleet, from the calls counted in 2 and in a
//     path change.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

const (
	// labStart bounds starting a lab, its extra buckets included.
	labStart = 5 * time.Minute

	// benchPrefix names the generated buckets.
	benchPrefix = "bench-"

	// natFront stands for an S3 address outside the S3 prefix list,
	// reached through the scenario's NAT gateway (0.0.0.0/0), whose
	// public address is natSource. Moving S3's name there is a path
	// change.
	natFront  = "127.44.0.10"
	natSource = "127.100.0.20"

	// bucketWorkers creates the generated buckets in parallel: each is
	// one `versitygw admin` process, mostly start-up time.
	bucketWorkers = 4
)

type options struct {
	scenario      string
	out           string
	readme        string
	runs          int
	probes        int
	daemonBuckets int
	interval      time.Duration
	scale         []int
	skip          map[string]bool
	benchtime     string

	pathagent, aws, rclone, blackbox, goTool string
}

func main() {
	os.Exit(benchMain())
}

// benchMain runs the benchmarks and returns the exit code: 0, 1 when a part
// failed (the table still shows the others), 2 when nothing could run.
func benchMain() int {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// A private copy: a rebuild of bin/ during the run must not change
	// what is measured halfway.
	tmp, err := os.MkdirTemp("", "pathagent-bench-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	if o.pathagent, err = copyBinary(o.pathagent, tmp); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}

	res, err := run(ctx, o)
	if res != nil {
		text := render(o, res)
		fmt.Print(text)
		if werr := writeResults(o, res, text); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags() (*options, error) {
	o := &options{}
	var scale, skip string
	flag.StringVar(&o.scenario, "scenario", "lab/scenarios/gateway-endpoint.yaml", "lab scenario `file`")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "results `file`")
	flag.StringVar(&o.readme, "readme", "README.md", "README whose benchmark section is updated; empty: none")
	flag.IntVar(&o.runs, "runs", 7, "runs of each one-shot tool; the median is reported")
	flag.IntVar(&o.probes, "probes", 1000, "probes for the daemon against blackbox_exporter")
	flag.IntVar(&o.daemonBuckets, "daemon-buckets", 25, "buckets the daemon probes against blackbox_exporter")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "daemon interval (pathagent's minimum is 10s)")
	flag.StringVar(&scale, "scale", "1,100,1000", "bucket counts for the scale runs")
	flag.StringVar(&skip, "skip", "", "parts to skip, comma-separated: once,versus,scale,go,fleet")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime")
	flag.StringVar(&o.pathagent, "pathagent", "bin/pathagent", "pathagent `binary`")
	flag.StringVar(&o.aws, "aws", "/usr/bin/aws", "AWS CLI `binary` (Debian's, not a pyenv one)")
	flag.StringVar(&o.rclone, "rclone", "/usr/bin/rclone", "rclone `binary`")
	flag.StringVar(&o.blackbox, "blackbox", "/usr/bin/prometheus-blackbox-exporter", "blackbox_exporter `binary`")
	flag.StringVar(&o.goTool, "go", "go", "go `binary`")
	flag.Parse()

	for _, s := range strings.Split(scale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-scale: %q is not a bucket count", s)
		}
		o.scale = append(o.scale, n)
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s != "" {
			o.skip[s] = true
		}
	}
	if o.runs < 1 || o.probes < 1 || o.daemonBuckets < 1 {
		return nil, errors.New("-runs, -probes and -daemon-buckets must be positive")
	}
	abs, err := filepath.Abs(o.pathagent)
	if err != nil {
		return nil, err
	}
	o.pathagent = abs
	return o, nil
}

// results is everything measured; a part that was skipped or failed is nil.
type results struct {
	started  time.Time
	finished time.Time
	machine  string
	version  string

	// loadStart and loadEnd are the 1-minute load averages around the
	// run: how busy the machine was with other work.
	loadStart, loadEnd string

	once    []onceResult
	versus  *versusResult
	scale   []scaleResult
	early   *earlyResult
	gobench map[string]goBench
	goOrder []string

	errs []string
}

// run measures each part in turn. A part that fails is recorded and the
// others go on, so one broken peer does not cost the whole table.
func run(ctx context.Context, o *options) (*results, error) {
	res := &results{
		started:   time.Now(),
		machine:   machine(),
		version:   version(ctx, o),
		loadStart: loadAverage(),
	}
	fail := func(part string, err error) {
		res.errs = append(res.errs, fmt.Sprintf("%s: %v", part, err))
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", part, err)
	}
	defer func() {
		res.finished = time.Now()
		res.loadEnd = loadAverage()
	}()

	// The Go benchmarks go first, on a quiet machine: no lab runs yet.
	if !o.skip["go"] {
		fmt.Fprintln(os.Stderr, "bench: go test -bench", strings.Join(goBenchPackages, " "))
		var err error
		if res.gobench, res.goOrder, err = runGoBench(ctx, o.goTool, o.benchtime); err != nil {
			fail("go", err)
		}
	}

	s, err := scenario.Load(o.scenario)
	if err != nil {
		return res, err
	}

	if !o.skip["once"] {
		if err := withLab(ctx, s, nil, func(l *lab.Lab, dir string) error {
			var err error
			res.once, err = benchOnce(ctx, o, l, dir)
			return err
		}); err != nil {
			fail("once", err)
		}
	}

	if o.skip["versus"] && o.skip["scale"] && o.skip["fleet"] {
		return res, joinErrs(res.errs)
	}

	// One lab with every bucket the daemon runs need, and a second S3
	// front on the NAT gateway's path for the path change.
	big, names := benchScenario(s, max(slices.Max(o.scale), o.daemonBuckets))
	err = withLab(ctx, big, names[1:], func(l *lab.Lab, dir string) error {
		if !o.skip["versus"] {
			var err error
			if res.versus, err = benchVersus(ctx, o, l, dir, names); err != nil {
				fail("versus", err)
			}
		}
		if !o.skip["fleet"] {
			var err error
			res.early, err = benchEarlyRefresh(ctx, l, names[0], natRecords(big))
			if err != nil {
				fail("fleet", err)
			}
		}
		if !o.skip["scale"] {
			var err error
			if res.scale, err = benchScale(ctx, o, l, dir, names); err != nil {
				fail("scale", err)
			}
		}
		return nil
	})
	if err != nil {
		fail("lab", err)
	}
	return res, joinErrs(res.errs)
}

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d part(s) failed", len(errs))
}

// benchScenario copies s with n buckets in its region: its first bucket,
// then generated ones, and an S3 front outside the prefix list.
func benchScenario(s *scenario.Scenario, n int) (*scenario.Scenario, []string) {
	c := *s
	c.Name = s.Name + "-bench"
	c.S3 = slices.Clone(s.S3)
	c.S3[0].Fronts = append(slices.Clone(s.S3[0].Fronts), scenario.Front{Address: natFront, Source: natSource})
	c.Buckets = []scenario.Bucket{s.Buckets[0]}

	names := []string{s.Buckets[0].Name}
	for i := 1; i < n; i++ {
		names = append(names, fmt.Sprintf("%s%04d", benchPrefix, i))
	}
	return &c, names
}

// natRecords answers S3's names with the NAT-path front.
func natRecords(s *scenario.Scenario) []scenario.Record {
	var out []scenario.Record
	for _, r := range s.DNS {
		if strings.Contains(r.Name, ".amazonaws.com") && len(r.A) > 0 {
			r.A = []string{natFront}
		}
		out = append(out, r)
	}
	return out
}

// withLab starts a lab for s, creates the extra buckets (owned by the
// agent, as the lab's own are), runs f and stops the lab.
func withLab(ctx context.Context, s *scenario.Scenario, extra []string, f func(*lab.Lab, string) error) error {
	dir, err := os.MkdirTemp("", "pathagent-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	startCtx, cancel := context.WithTimeout(ctx, labStart)
	defer cancel()
	fmt.Fprintf(os.Stderr, "bench: starting lab %s\n", s.Name)
	l, err := lab.Start(startCtx, dir, s)
	if err != nil {
		return fmt.Errorf("start lab (run `make tools` if a binary is missing): %w", err)
	}
	defer l.Stop()

	if len(extra) > 0 {
		start := time.Now()
		if err := createBuckets(startCtx, l, extra); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: created %d buckets in %s\n",
			len(extra), time.Since(start).Round(time.Millisecond))
	}
	return f(l, dir)
}

// createBuckets makes each bucket owned by the agent's account with
// `versitygw admin`, as the lab does for a scenario's buckets, a few at a
// time.
func createBuckets(ctx context.Context, l *lab.Lab, names []string) error {
	bin, err := findTool("versitygw")
	if err != nil {
		return err
	}
	root := l.S3.Root()
	region := l.Scenario.Region
	admin := func(bucket string) error {
		cmd := exec.CommandContext(ctx, bin, "admin",
			"--region", region,
			"--endpoint-url", l.S3.DirectURL(region),
			"create-bucket", "--owner", lab.AgentAccessKeyID, "--bucket", bucket)
		// The root secret goes in the environment, not the process list.
		cmd.Env = []string{
			"ADMIN_ACCESS_KEY=" + root.AccessKeyID,
			"ADMIN_SECRET_KEY=" + root.SecretAccessKey,
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("create bucket %s: %w: %s", bucket, err, strings.TrimSpace(string(out)))
		}
		return nil
	}

	work := make(chan string)
	errs := make(chan error, bucketWorkers)
	var wg sync.WaitGroup
	for range bucketWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := admin(b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var first error
feed:
	for _, b := range names {
		select {
		case work <- b:
		case first = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if first == nil {
		first = <-errs
	}
	return first
}

// machine describes the CPU and core count, for the table's header.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores", model, runtime.NumCPU())
}

// copyBinary copies an executable into dir and returns the copy's path. It
// streams: a 70 MB binary read whole would swell this process, which every
// child it starts inherits in its peak RSS (see gnuTime).
func copyBinary(path, dir string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w (run `make build`)", path, err)
	}
	defer src.Close()
	dstPath := filepath.Join(dir, filepath.Base(path))
	dst, err := os.OpenFile(dstPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", path, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", fmt.Errorf("copy %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return "", fmt.Errorf("copy %s: %w", path, err)
	}
	return dstPath, nil
}

// loadAverage is the first field of /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func version(ctx context.Context, o *options) string {
	out, err := exec.CommandContext(ctx, o.pathagent, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
