package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100
// on every Linux architecture pathagent is built for.
const clockTicks = 100

// usage is what one command, or a sequence of them, cost.
type usage struct {
	wall time.Duration
	cpu  time.Duration // user + system

	// maxRSS is the largest resident set of any command, in KiB.
	maxRSS int64
}

// spread is the fastest and slowest wall time of the runs a median was
// taken over.
type spread struct{ min, max time.Duration }

// add accumulates the next command of a sequence: times add up, the peak
// is the largest.
func (u usage) add(v usage) usage {
	return usage{wall: u.wall + v.wall, cpu: u.cpu + v.cpu, maxRSS: max(u.maxRSS, v.maxRSS)}
}

// gnuTime runs each measured command. The peak RSS a parent reads from
// wait4 is not the child's own when the parent is big: Go starts children
// with vfork, and Linux keeps in the child's maxrss the parent's resident
// set at exec. GNU time forks from its own small image, so its %M is the
// command's peak.
const gnuTime = "/usr/bin/time"

// runMeasured runs one command to completion under GNU time and returns its
// wall time (this process's clock), CPU time (the kernel's account of the
// command and GNU time together, which adds well under a millisecond) and
// peak RSS (GNU time's), with its standard output.
func runMeasured(ctx context.Context, env []string, argv ...string) (usage, []byte, error) {
	rssFile, err := os.CreateTemp("", "pathagent-bench-rss-")
	if err != nil {
		return usage{}, nil, fmt.Errorf("run %s: %w", argv[0], err)
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())

	full := append([]string{"-f", "%M", "-o", rssFile.Name()}, argv...)
	cmd := exec.CommandContext(ctx, gnuTime, full...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return usage{}, nil, fmt.Errorf("run %s: %w: %s",
			strings.Join(argv, " "), err, lastLines(stderr.String(), 5))
	}

	out, err := os.ReadFile(rssFile.Name())
	if err != nil {
		return usage{}, nil, fmt.Errorf("run %s: read peak rss: %w", argv[0], err)
	}
	rss, err := strconv.ParseInt(lastLines(string(out), 1), 10, 64)
	if err != nil {
		return usage{}, nil, fmt.Errorf("run %s: peak rss %q: %w", argv[0], out, err)
	}
	return usage{
		wall:   wall,
		cpu:    cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		maxRSS: rss, // KiB
	}, stdout.Bytes(), nil
}

// procSample is a running process's CPU time and memory at one moment.
type procSample struct {
	cpu time.Duration
	rss int64 // KiB, VmRSS
	hwm int64 // KiB, VmHWM: the peak resident set so far

	// anon is the part of rss that is the process's own memory (heap,
	// stacks); the rest is file pages, mostly the binary's own.
	anon int64 // KiB, RssAnon
}

// sampleProc reads a running process's CPU time from /proc/PID/stat and its
// resident set from /proc/PID/status.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("sample process %d: %w", pid, err)
	}
	// The command name may hold spaces; the fields after it do not.
	_, rest, ok := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return s, fmt.Errorf("sample process %d: short stat line", pid)
	}
	// utime and stime are fields 14 and 15 of the line, 12 and 13
	// counted from the state field.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("sample process %d: bad cpu times", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("sample process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSuffix(strings.TrimSpace(v), " kB")
		switch k {
		case "VmRSS":
			s.rss, _ = strconv.ParseInt(v, 10, 64)
		case "VmHWM":
			s.hwm, _ = strconv.ParseInt(v, 10, 64)
		case "RssAnon":
			s.anon, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s, nil
}

// freeAddr returns a loopback host:port nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// findTool looks for a binary on PATH, then where `go install` puts it.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{os.Getenv("GOBIN")}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if d != "" {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in GOBIN: run `make tools`", name)
}

func median[T int64 | time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
