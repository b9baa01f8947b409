package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchPackages hold the hot paths: route matching, classification, and
// the metrics a scrape reads.
var goBenchPackages = []string{"./internal/route", "./internal/agent", "./internal/metrics"}

// goBench is one benchmark's result line.
type goBench struct {
	name     string // without the -GOMAXPROCS suffix
	nsPerOp  float64
	bytesOp  float64
	allocsOp float64
}

// runGoBench runs the packages' benchmarks once each and parses their
// result lines.
func runGoBench(ctx context.Context, goTool, benchtime string) (map[string]goBench, []string, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", "1", "-benchtime", benchtime}, goBenchPackages...)
	cmd := exec.CommandContext(ctx, goTool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("go test -bench: %w\n%s", err, out.String())
	}

	got := map[string]goBench{}
	var order []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := goBench{name: strings.TrimPrefix(f[0], "Benchmark")}
		if i := strings.LastIndexByte(b.name, '-'); i > 0 {
			b.name = b.name[:i]
		}
		// Value-unit pairs follow the iteration count.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.nsPerOp = v
			case "B/op":
				b.bytesOp = v
			case "allocs/op":
				b.allocsOp = v
			}
		}
		got[b.name] = b
		order = append(order, b.name)
	}
	return got, order, nil
}
