package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/daemon"
)

// readmeBegin and readmeEnd delimit the section of the README this command
// owns; the rest of the file is left as it is.
const (
	readmeBegin = "<!-- bench:begin (written by make bench) -->"
	readmeEnd   = "<!-- bench:end -->"
)

func render(o *options, r *results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# pathagent benchmarks\n\n")
	p("`make bench` on %s, %s, %s; took %s.\n",
		r.machine, r.started.UTC().Format("2006-01-02 15:04 MST"), r.version,
		r.finished.Sub(r.started).Round(time.Second))
	p("Load average (1 min) %s at the start, %s at the end: other work on the machine\n",
		r.loadStart, r.loadEnd)
	p("stretches wall times, less so CPU times and memory. Each ratio compares pathagent\n")
	p("with a peer measured in the same run on the same lab (versitygw on loopback), so it\n")
	p("holds on another machine where the absolute figures do not. Lower is better.\n\n")

	if len(r.once) > 0 {
		renderOnce(p, o, r.once)
	}
	if r.versus != nil {
		renderVersus(p, o, r.versus)
	}
	if len(r.scale) > 0 {
		renderScale(p, o, r.scale)
	}
	if r.gobench != nil {
		renderGo(p, r)
	}
	if r.versus != nil || r.early != nil {
		renderFleet(p, r.versus, r.early)
	}
	if len(r.errs) > 0 {
		p("## Parts that failed\n\n")
		for _, e := range r.errs {
			p("- %s\n", e)
		}
		p("\n")
	}
	return b.String()
}

type printf func(format string, args ...any)

func renderOnce(p printf, o *options, rs []onceResult) {
	p("## 1. One diagnosis: `pathagent once` against the same S3 job by hand\n\n")
	p("gateway-endpoint lab, one bucket, median of %d runs after a warm-up. pathagent reads\n", o.runs)
	p("the identity (IMDSv2), the topology (4 EC2 calls), resolves S3's name and probes\n")
	p("list, put, get, delete; the peers only do the S3 part, one command per step\n")
	p("(aws: `s3 ls`, `s3 ls s3://B`, `s3 cp` up and down, `s3 rm`; rclone: `lsd`, `lsf`,\n")
	p("`copyto`, `cat`, `deletefile`), path-style against the same S3 front.\n\n")
	p("| tool | commands | wall | wall, fastest–slowest | CPU (user+sys) | peak RSS | wall ÷ pathagent | CPU ÷ pathagent | RSS ÷ pathagent |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	base := rs[0].cost
	for _, r := range rs {
		c := r.cost
		p("| %s | %d | %s | %s–%s | %s | %s | %s | %s | %s |\n",
			r.name, r.steps, secs(c.wall), secs(r.wall.min), secs(r.wall.max), secs(c.cpu), mib(c.maxRSS),
			ratio(c.wall.Seconds(), base.wall.Seconds()),
			ratio(c.cpu.Seconds(), base.cpu.Seconds()),
			ratio(float64(c.maxRSS), float64(base.maxRSS)))
	}
	p("\n")
}

func renderVersus(p printf, o *options, v *versusResult) {
	pa, bb := v.pathagent, v.blackbox
	p("## 2. The daemon against blackbox_exporter, same server, same rate\n\n")
	p("`pathagent run` over %d buckets every %s (%.0f probes a cycle, 4 at a time) against\n",
		v.buckets, v.interval, float64(v.buckets*4))
	p("Debian's prometheus-blackbox-exporter asked for an HTTP GET of the same S3 front at the\n")
	p("same average rate, %.0f a second, concurrently. A pathagent probe is a signed S3 request\n", v.rate)
	p("on a new connection with its own DNS lookup; a blackbox probe an unsigned GET.\n\n")
	p("| | pathagent run | blackbox_exporter | pathagent ÷ blackbox |\n")
	p("|---|---:|---:|---:|\n")
	p("| probes | %.0f | %.0f | |\n", pa.probes, bb.probes)
	p("| RSS idle | %s | %s | %s |\n", mib(pa.idle.rss), mib(bb.idle.rss), ratio(float64(pa.idle.rss), float64(bb.idle.rss)))
	p("| RSS after the probes | %s | %s | %s |\n", mib(pa.after.rss), mib(bb.after.rss), ratio(float64(pa.after.rss), float64(bb.after.rss)))
	p("| of which anonymous (heap, stacks), after | %s | %s | %s |\n", mib(pa.after.anon), mib(bb.after.anon), ratio(float64(pa.after.anon), float64(bb.after.anon)))
	p("| of which file pages (the binary), after | %s | %s | %s |\n",
		mib(pa.after.rss-pa.after.anon), mib(bb.after.rss-bb.after.anon),
		ratio(float64(pa.after.rss-pa.after.anon), float64(bb.after.rss-bb.after.anon)))
	p("| peak RSS | %s | %s | %s |\n", mib(pa.after.hwm), mib(bb.after.hwm), ratio(float64(pa.after.hwm), float64(bb.after.hwm)))
	p("| CPU per probe | %s | %s | %s |\n", ms(pa.cpuPerProbe()), ms(bb.cpuPerProbe()),
		ratio(pa.cpuPerProbe().Seconds(), bb.cpuPerProbe().Seconds()))
	p("\n")
}

func renderScale(p printf, o *options, rs []scaleResult) {
	p("## 3. Scale: buckets per agent\n\n")
	p("`pathagent run` every %s, 4 buckets at a time, two cycles each; the second runs on\n", o.interval)
	p("the cached identity and topology. CPU is from the end of cycle 1 to the end of cycle 2;\n")
	p("series are the lines of /metrics; scrape is the median of %d GETs. Ratios are to one bucket.\n", scrapes)
	p("CPU times come from /proc in ticks of 10 ms.\n\n")
	p("| buckets | cycle 1 | cycle 2 | cycle 2 per bucket | CPU | RSS after | anonymous | peak RSS | series | /metrics | scrape | cycle ÷ 1 | RSS ÷ 1 | series ÷ 1 | scrape ÷ 1 |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	base := rs[0]
	for _, r := range rs {
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			count(float64(r.buckets)), secs(r.first.took), secs(r.second.took),
			ms(r.second.took/time.Duration(r.buckets)), cpuSecs(r.cpu),
			mib(r.second.sample.rss), mib(r.second.sample.anon), mib(r.second.sample.hwm),
			count(float64(r.series)), kib(r.scrapeBytes), ms(r.scrapeTime),
			ratio(r.second.took.Seconds(), base.second.took.Seconds()),
			ratio(float64(r.second.sample.rss), float64(base.second.sample.rss)),
			ratio(float64(r.series), float64(base.series)),
			ratio(r.scrapeTime.Seconds(), base.scrapeTime.Seconds()))
		if r.skipped > 0 {
			p("|  | (%.0f cycle(s) skipped: a cycle outlasted the interval) | | | | | | | | | | | | | |\n", r.skipped)
		}
	}
	p("\n")
}

// goPeer names, for a benchmark, the benchmark it is read against and how
// many of the peer's operations make one of its own.
func goPeer(name string) (peer string, times float64) {
	pkg, sub, _ := strings.Cut(name, "/")
	n := 1.0
	if _, v, ok := strings.Cut(sub, "="); ok {
		fmt.Sscan(v, &n)
	}
	switch pkg {
	case "Select", "Attribute":
		return "ScanBaseline", 1
	case "Assemble":
		return "ReportJSON/" + sub, 1
	case "Scrape":
		return "ScrapeBaseline", 1
	case "ObserveCycle":
		// Linear growth reads 1.
		return "ObserveCycle/buckets=1", n
	}
	return "", 0
}

func renderGo(p printf, r *results) {
	p("## 4. Go benchmarks\n\n")
	p("`go test -run '^$' -bench . -benchmem` in %s. Peers: `ScanBaseline` is a bare\n",
		strings.Join(goBenchPackages, ", "))
	p("longest-prefix scan (one `Contains` per route and list entry) over the same 10,000-entry\n")
	p("prefix list; `ReportJSON` encodes the same report `Assemble` builds; `ScrapeBaseline`\n")
	p("serves only the Go and process collectors; `ObserveCycle` over N buckets is read against\n")
	p("N times one bucket, so 1 means linear.\n\n")
	p("| benchmark | ns/op | B/op | allocs/op | peer | ÷ peer |\n")
	p("|---|---:|---:|---:|---|---:|\n")
	for _, name := range r.goOrder {
		g := r.gobench[name]
		peer, times := goPeer(name)
		cmp := ""
		if pb, ok := r.gobench[peer]; ok && peer != name {
			cmp = ratio(g.nsPerOp, pb.nsPerOp*times)
			if times != 1 {
				peer = fmt.Sprintf("%s × %.0f", peer, times)
			}
		} else {
			peer = ""
		}
		p("| %s | %s | %.0f | %.0f | %s | %s |\n", name, num(g.nsPerOp), g.bytesOp, g.allocsOp, peer, cmp)
	}
	p("\n")
}

func renderFleet(p printf, v *versusResult, e *earlyResult) {
	p("## 5. EC2 API budget of a fleet\n\n")
	perRead := 0.0
	if v != nil && v.topologyReads > 0 {
		perRead = v.ec2Calls / v.topologyReads
		hourly := perRead * float64(time.Hour) / float64(config.DefaultTopologyRefresh)
		fleet := fleetAgents * hourly / 3600
		p("- Measured (section 2's daemon, `topology_refresh: %s`, %s): %.0f EC2 calls in %.0f\n",
			v.topologyRefresh, v.ran.Round(time.Second), v.ec2Calls, v.topologyReads)
		p("  topology reads, %.1f calls a read (`pathagent_ec2_api_calls_total`, retries included).\n", perRead)
		p("- Steady state at the default `topology_refresh: 1h`: %.1f calls per agent per hour;\n", hourly)
		p("  %s agents make %.1f calls/s, %s of the account's refill of %.0f/s.\n",
			count(fleetAgents), fleet, pct(fleet/describeRefill), describeRefill)
	}
	if e != nil {
		calls := e.callsAfter - e.callsBefore
		reads := e.readsAfter - e.readsBefore
		gap := daemon.DefaultEarlyRefreshGap
		p("- A path change (measured in-process: S3's name moved to an address outside the prefix\n")
		p("  list, the path became %s): %.0f extra read(s), %.0f calls, before the new path showed.\n",
			e.newKind, reads, calls)
		burst := fleetAgents * calls
		p("  The same change seen by all %s agents at once: %s calls, %s of refill\n",
			count(fleetAgents), count(burst), (time.Duration(burst/describeRefill) * time.Second).String())
		p("  (agents that are throttled back off, doubling up to an hour).\n")
		if perRead > 0 {
			worst := perRead + calls*float64(time.Hour/gap)
			wf := fleetAgents * worst / 3600
			p("- Worst case, outcome or address changing every cycle: one early read per %s at most,\n", gap)
			p("  %.0f calls per agent per hour; %s agents: %.1f calls/s, %s the refill.\n",
				worst, count(fleetAgents), wf, ratio(wf, describeRefill))
		}
	}
	p("\n")
}

// renderReadme is the short section kept at the end of the README.
func renderReadme(o *options, r *results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("%s\n## Benchmarks\n\n", readmeBegin)
	p("`make bench` (under 10 minutes on 2 cores) measures pathagent against peers run side by side on\n")
	p("the lab and writes `%s`. Latest, %s, %s:\n\n", o.out, r.started.UTC().Format("2006-01-02"), r.machine)
	p("| measure | pathagent | peer | pathagent ÷ peer |\n|---|---:|---:|---:|\n")
	if len(r.once) == 3 {
		pa := r.once[0].cost
		for _, peer := range r.once[1:] {
			c := peer.cost
			p("| one diagnosis vs %s: wall / CPU / peak RSS | %s / %s / %s | %s / %s / %s | %s / %s / %s |\n",
				peer.name, secs(pa.wall), secs(pa.cpu), mib(pa.maxRSS),
				secs(c.wall), secs(c.cpu), mib(c.maxRSS),
				ratio(pa.wall.Seconds(), c.wall.Seconds()), ratio(pa.cpu.Seconds(), c.cpu.Seconds()),
				ratio(float64(pa.maxRSS), float64(c.maxRSS)))
		}
	}
	if v := r.versus; v != nil {
		pa, bb := v.pathagent, v.blackbox
		p("| daemon vs blackbox_exporter: RSS idle / after %.0f probes | %s / %s | %s / %s | %s / %s |\n",
			pa.probes, mib(pa.idle.rss), mib(pa.after.rss), mib(bb.idle.rss), mib(bb.after.rss),
			ratio(float64(pa.idle.rss), float64(bb.idle.rss)), ratio(float64(pa.after.rss), float64(bb.after.rss)))
		p("| daemon vs blackbox_exporter: CPU per probe | %s | %s | %s |\n",
			ms(pa.cpuPerProbe()), ms(bb.cpuPerProbe()), ratio(pa.cpuPerProbe().Seconds(), bb.cpuPerProbe().Seconds()))
	}
	if n := len(r.scale); n > 1 {
		a, z := r.scale[0], r.scale[n-1]
		p("| %s buckets vs 1: cycle / RSS / series / scrape | %s / %s / %s / %s | %s / %s / %s / %s | %s / %s / %s / %s |\n",
			count(float64(z.buckets)), secs(z.second.took), mib(z.second.sample.rss), count(float64(z.series)), ms(z.scrapeTime),
			secs(a.second.took), mib(a.second.sample.rss), count(float64(a.series)), ms(a.scrapeTime),
			ratio(z.second.took.Seconds(), a.second.took.Seconds()),
			ratio(float64(z.second.sample.rss), float64(a.second.sample.rss)),
			ratio(float64(z.series), float64(a.series)), ratio(z.scrapeTime.Seconds(), a.scrapeTime.Seconds()))
	}
	p("\n%s\n", readmeEnd)
	return b.String()
}

// writeResults writes the full results file and replaces the README's
// benchmark section, appending it the first time.
func writeResults(o *options, r *results, text string) error {
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", o.out)
	if o.readme == "" {
		return nil
	}

	old, err := os.ReadFile(o.readme)
	if err != nil {
		return fmt.Errorf("update readme: %w", err)
	}
	section := renderReadme(o, r)
	s := string(old)
	i := strings.Index(s, readmeBegin)
	j := strings.Index(s, readmeEnd)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + strings.TrimSuffix(section, "\n") + s[j+len(readmeEnd):]
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	if err := os.WriteFile(o.readme, []byte(s), 0o644); err != nil {
		return fmt.Errorf("update readme: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: updated %s\n", o.readme)
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func kib(b int) string { return fmt.Sprintf("%.0f KiB", float64(b)/1024) }

// cpuSecs renders a CPU time read from /proc, whose unit is a tick.
func cpuSecs(d time.Duration) string {
	if d == 0 {
		return "< 0.01 s"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// count renders a whole number with thousands separators.
func count(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

// ratio renders a ÷ b, or "n/a" when b is zero.
func ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "n/a"
	}
	q := a / b
	switch {
	case q >= 10:
		return fmt.Sprintf("%.0f×", q)
	case q >= 0.1:
		return fmt.Sprintf("%.2f×", q)
	}
	return fmt.Sprintf("%.3f×", q)
}
