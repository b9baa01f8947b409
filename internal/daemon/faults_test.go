package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/explain"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/audit"
	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/faults"
	"github.com/pathagent/pathagent/internal/lab/labtest"
	"github.com/pathagent/pathagent/internal/report"
)

// probeTimeout bounds each probe request in the fault tests: a fault that
// makes S3 or DNS hang then costs a second, not the default ten.
const probeTimeout = time.Second

// settle is how long a test watches for something that must not happen
// (a retry, a crash): several intervals.
const settle = 6 * testInterval

// s3Name is the S3 name the gateway-endpoint scenario's probes resolve.
const s3Name = "s3.us-east-1.amazonaws.com"

// faultLab is the daemon of harness with every part of the lab reached
// through something that misbehaves on demand: the EC2 API and IMDS
// through wrapping handlers, S3 through a proxy on the front's address.
type faultLab struct {
	*harness
	ec2    *faults.EC2
	ec2Srv *httptest.Server
	imds   *faults.IMDS
	s3     *faults.S3Proxy

	// imdsURL is where the agent reads its identity; a test may point
	// it at nothing before the daemon starts.
	imdsURL string
}

func newFaultLab(t *testing.T) *faultLab {
	t.Helper()
	h := newHarness(t, "gateway-endpoint")
	f := &faultLab{harness: h, ec2: faults.NewEC2(h.lab.EC2)}

	f.ec2Srv = httptest.NewServer(f.ec2)
	t.Cleanup(func() {
		// A hung handler holds Close until its client is gone.
		f.ec2Srv.CloseClientConnections()
		f.ec2Srv.Close()
	})

	var err error
	if f.imds, err = faults.NewIMDS(h.lab.IMDS.URL()); err != nil {
		t.Fatal(err)
	}
	imdsSrv := httptest.NewServer(f.imds)
	t.Cleanup(imdsSrv.Close)
	f.imdsURL = imdsSrv.URL

	// The proxy listens on the front's own address, so the path the
	// probes take is judged as before: only the port differs.
	front := h.s.S3[0].Fronts[0].Address
	f.s3, err = faults.StartS3Proxy(net.JoinHostPort(front, "0"),
		net.JoinHostPort(front, strconv.Itoa(h.lab.S3.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.s3.Close() })

	h.cfg.Timeout = probeTimeout
	h.cfg.S3Endpoint = fmt.Sprintf("http://s3.{region}.amazonaws.com:%d", f.s3.Port())

	awsCfg := aws.Config{
		// One client for every EC2 call, as run.go has: the SDK
		// makes a transport per EC2 client otherwise, and each
		// topology read would leave an idle connection behind.
		HTTPClient:   awshttp.NewBuildableClient(),
		Region:       h.s.Region,
		BaseEndpoint: aws.String(f.ec2Srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(
			lab.AgentAccessKeyID, lab.AgentSecretAccessKey, ""),
		// The SDK's own attempts and their number stay as in
		// production; only the pauses between them shrink, so a
		// throttled test does not wait seconds.
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxBackoff = 10 * time.Millisecond
			})
		},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PATHAGENT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.d.Log = log
	h.d.NewAgent = func(c *config.Config) *agent.Agent {
		return &agent.Agent{
			Config: c,
			IMDS: imds.NewClient(imds.ClientOptions{
				Endpoint: f.imdsURL,
				AllowV1:  c.AllowIMDSv1,
			}),
			AWS:           awsCfg,
			EC2APIOptions: []func(*middleware.Stack) error{CountEC2Calls(h.m)},
			Resolver:      c.Resolver,
			Log:           log,
		}
	}
	return f
}

// reconfigure reloads the daemon with a changed copy of its configuration.
func (h *harness) reconfigure(t *testing.T, change func(*config.Config)) {
	t.Helper()
	h.mu.Lock()
	next := *h.cfg
	change(&next)
	h.cfg = &next
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.d.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// nextCycle waits until a probe cycle that began after the call has
// ended: the one in flight may predate a change, the next cannot. The
// change must show by then, that is within one interval and one cycle's
// run.
func (h *harness) nextCycle(t *testing.T) {
	t.Helper()
	// A cycle's start is its end less its duration, both set together;
	// the margin covers the instants between the two clock readings.
	since := float64(time.Now().Add(5*time.Millisecond).UnixNano()) / 1e9
	waitFor(t, "the next whole cycle", 20*time.Second, func() bool {
		end, took := h.lastCycle(t)
		return end-took > since
	})
}

// lastCycle returns the end and the duration of the last cycle, in
// seconds, from one gathering of the metrics.
func (h *harness) lastCycle(t *testing.T) (end, took float64) {
	t.Helper()
	mfs, err := h.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		switch mf.GetName() {
		case "pathagent_last_cycle_timestamp_seconds":
			end = mf.GetMetric()[0].GetGauge().GetValue()
		case "pathagent_cycle_duration_seconds":
			took = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return end, took
}

// running fails the test if Run has returned.
func (h *harness) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.done:
		h.stop = nil
		t.Fatalf("Run returned while faults were injected: %v", err)
	default:
	}
}

// probeOf returns the last report's probe of op on the bucket.
func (h *harness) probeOf(t *testing.T, bucket, op string) report.Probe {
	t.Helper()
	rep := h.d.Last()
	if rep == nil {
		t.Fatal("no report yet")
	}
	for _, b := range rep.Buckets {
		if b.Name != bucket {
			continue
		}
		for _, p := range b.Probes {
			if p.Op == op {
				return p
			}
		}
	}
	t.Fatalf("no %s probe of %s in the last report", op, bucket)
	return report.Probe{}
}

// Each S3 and DNS fault, one after the other on one running daemon: the
// metrics name the documented reason by the end of the first cycle begun
// after the fault, the daemon goes on cycling, and once the fault heals
// the bucket is reachable again and the reason goes away.
func TestS3AndDNSFaults(t *testing.T) {
	f := newFaultLab(t)
	bucket := "lab-data"
	denyPut := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",` +
		`"Action":"s3:PutObject","Resource":"arn:aws:s3:::lab-data/*"}]}`

	garbage, err := faults.StartDNS(func(q []byte, _ bool) []byte {
		// A reply header claiming one answer, and no answer.
		return []byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xff}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { garbage.Close() })
	labResolver := f.cfg.Resolver

	tests := []struct {
		name       string
		set, heal  func(t *testing.T)
		op, reason string
	}{
		{
			name: "403 AccessDenied from the bucket policy",
			set: func(t *testing.T) {
				if err := f.lab.S3.SetBucketPolicy(context.Background(), bucket, denyPut); err != nil {
					t.Fatal(err)
				}
			},
			heal: func(t *testing.T) {
				if err := f.lab.S3.SetBucketPolicy(context.Background(), bucket, ""); err != nil {
					t.Fatal(err)
				}
			},
			op: "put", reason: "access_denied",
		},
		{
			name: "301 PermanentRedirect",
			set: func(*testing.T) {
				f.s3.Set(faults.S3List, faults.S3Fault{Status: 301, Code: "PermanentRedirect"})
			},
			op: "list", reason: "wrong_region",
		},
		{
			name: "500 InternalError",
			set: func(*testing.T) {
				f.s3.Set(faults.S3Put, faults.S3Fault{Status: 500, Code: "InternalError"})
			},
			op: "put", reason: "server_error",
		},
		{
			name: "503 SlowDown",
			set: func(*testing.T) {
				f.s3.Set(faults.S3Get, faults.S3Fault{Status: 503, Code: "SlowDown"})
			},
			op: "get", reason: "throttled",
		},
		{
			name: "connection reset",
			set:  func(*testing.T) { f.s3.Set(faults.S3List, faults.S3Fault{Reset: true}) },
			op:   "list", reason: "network",
		},
		{
			name: "body stalls half way",
			set:  func(*testing.T) { f.s3.Set(faults.S3Get, faults.S3Fault{StallBody: true}) },
			op:   "get", reason: "timeout",
		},
		{
			// S3 writes the object but its answer comes too late:
			// the agent cannot know the object exists, skips the
			// get and the delete, and the object stays until a
			// later cycle's sweep (see the audit at the end).
			name: "put answered after the probe gave up",
			set:  func(*testing.T) { f.s3.Set(faults.S3Put, faults.S3Fault{Hold: true}) },
			op:   "put", reason: "timeout",
		},
		{
			name: "body differs from what was written",
			set:  func(*testing.T) { f.s3.Set(faults.S3Get, faults.S3Fault{Corrupt: true}) },
			op:   "get", reason: "content_mismatch",
		},
		{
			// The probe timeout is longer than the resolver's, as
			// with the defaults (10s and 2s); the opposite is
			// TestDNSTimeoutWithinShortProbeTimeout.
			name: "DNS timeout",
			set: func(t *testing.T) {
				f.reconfigure(t, func(c *config.Config) { c.Timeout = 3 * time.Second })
				f.lab.DNS.SetFault(s3Name, dnsserver.Fault{Drop: true})
			},
			heal: func(t *testing.T) {
				f.lab.DNS.SetFault(s3Name, dnsserver.Fault{})
				f.reconfigure(t, func(c *config.Config) { c.Timeout = probeTimeout })
			},
			op: "list", reason: "dns",
		},
		{
			name: "DNS SERVFAIL",
			set:  func(*testing.T) { f.lab.DNS.SetFault(s3Name, dnsserver.Fault{Rcode: 2}) },
			heal: func(*testing.T) { f.lab.DNS.SetFault(s3Name, dnsserver.Fault{}) },
			op:   "list", reason: "dns",
		},
		{
			name: "DNS NXDOMAIN",
			set:  func(*testing.T) { f.lab.DNS.SetFault(s3Name, dnsserver.Fault{Rcode: 3}) },
			heal: func(*testing.T) { f.lab.DNS.SetFault(s3Name, dnsserver.Fault{}) },
			op:   "list", reason: "dns",
		},
		{
			name: "DNS malformed reply",
			set: func(t *testing.T) {
				f.reconfigure(t, func(c *config.Config) { c.Resolver = garbage.Addr() })
			},
			heal: func(t *testing.T) {
				f.reconfigure(t, func(c *config.Config) { c.Resolver = labResolver })
			},
			op: "list", reason: "dns",
		},
	}

	before, err := audit.Snapshot(context.Background(), f.lab)
	if err != nil {
		t.Fatal(err)
	}
	f.start(t)
	waitFor(t, "a healthy cycle", 10*time.Second, func() bool {
		v, _ := f.value(t, "pathagent_bucket_reachable", map[string]string{"bucket": bucket})
		return v == 1
	})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.set(t)
			f.nextCycle(t)
			f.running(t)

			labels := map[string]string{"bucket": bucket, "reason": tt.reason}
			if v, ok := f.value(t, "pathagent_bucket_failure_reason", labels); !ok || v != 1 {
				t.Errorf("bucket_failure_reason{reason=%q} = %v, %v; want 1", tt.reason, v, ok)
			}
			if v, _ := f.value(t, "pathagent_bucket_reachable", map[string]string{"bucket": bucket}); v != 0 {
				t.Errorf("bucket_reachable = %v, want 0", v)
			}
			op := map[string]string{"bucket": bucket, "op": tt.op}
			if v, ok := f.value(t, "pathagent_probe_success", op); !ok || v != 0 {
				t.Errorf("probe_success{op=%s} = %v, %v; want 0", tt.op, v, ok)
			}
			if v, _ := f.value(t, "pathagent_probe_failures_total",
				map[string]string{"bucket": bucket, "op": tt.op, "reason": tt.reason}); v < 1 {
				t.Errorf("probe_failures_total{op=%s,reason=%s} = %v, want at least 1", tt.op, tt.reason, v)
			}
			if p := f.probeOf(t, bucket, tt.op); p.Reason != tt.reason {
				t.Errorf("report: %s probe reason %q (%s), want %q", tt.op, p.Reason, p.Error, tt.reason)
			}
			if tt.op == "put" {
				// The get is not sent after a failed put: unknown, not
				// failed. The delete is sent only when the put's fate is
				// unknown (no answer), to remove what S3 may have written.
				if _, ok := f.value(t, "pathagent_probe_success",
					map[string]string{"bucket": bucket, "op": "get"}); ok {
					t.Error("probe_success{op=get} exposed for a probe that was not sent")
				}
				_, deleted := f.value(t, "pathagent_probe_success",
					map[string]string{"bucket": bucket, "op": "delete"})
				if p := f.probeOf(t, bucket, "put"); deleted != (p.HTTPStatus == 0) {
					t.Errorf("delete sent = %v after a put answered with status %d", deleted, p.HTTPStatus)
				}
			}

			if tt.heal != nil {
				tt.heal(t)
			}
			f.s3.Clear()
			f.nextCycle(t)
			if v, _ := f.value(t, "pathagent_bucket_reachable", map[string]string{"bucket": bucket}); v != 1 {
				t.Errorf("bucket_reachable = %v after the fault healed, want 1", v)
			}
			if _, ok := f.value(t, "pathagent_bucket_failure_reason", map[string]string{"bucket": bucket}); ok {
				t.Error("failure reason still exposed after the fault healed")
			}
		})
	}

	// A truncated UDP answer is no failure: the resolver asks again over
	// TCP and says so.
	t.Run("DNS truncated answer", func(t *testing.T) {
		f.lab.DNS.SetFault(s3Name, dnsserver.Fault{Truncate: true})
		defer f.lab.DNS.SetFault(s3Name, dnsserver.Fault{})
		f.nextCycle(t)
		if v, _ := f.value(t, "pathagent_bucket_reachable", map[string]string{"bucket": bucket}); v != 1 {
			t.Errorf("bucket_reachable = %v over a truncating resolver, want 1", v)
		}
		rep := f.d.Last()
		if d := rep.Buckets[0].DNS; d == nil || d.Transport != "tcp" {
			t.Errorf("report DNS = %+v, want the answer over tcp", d)
		}
	})

	// The audit: user objects byte for byte as they were; the objects
	// of the puts answered too late (one a cycle while that fault
	// lasted) are the only probe objects left, and the sweep removes
	// them once they are old enough.
	mid, err := audit.Snapshot(context.Background(), f.lab)
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for drained := false; !drained; {
		select {
		case <-f.s3.Held():
			late++
		default:
			drained = true
		}
	}
	left := mid.ProbeObjects()
	if len(left) > late {
		t.Errorf("probe objects left after the faults: %v, want at most the %d late puts'", left, late)
	}
	for _, k := range left {
		if err := audit.Age(f.lab, k, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	f.nextCycle(t)
	f.shutdown(t)
	after, err := audit.Snapshot(context.Background(), f.lab)
	if err != nil {
		t.Fatal(err)
	}
	if ch := audit.UserChanges(before, after); len(ch) > 0 {
		t.Errorf("user objects changed: %v", ch)
	}
	if p := after.ProbeObjects(); len(p) > 0 {
		t.Errorf("probe objects left after the sweep: %v", p)
	}
}

// A resolver that never answers is a DNS failure even when the probe's
// own timeout (here 1s) runs out before the resolver's (2s).
func TestDNSTimeoutWithinShortProbeTimeout(t *testing.T) {
	t.Parallel()
	f := newFaultLab(t)
	f.lab.DNS.SetFault(s3Name, dnsserver.Fault{Drop: true})
	f.start(t)
	waitFor(t, "a cycle", 15*time.Second, func() bool { return f.cycles(t) >= 1 })
	if p := f.probeOf(t, "lab-data", "list"); p.Reason != "dns" {
		t.Errorf("list probe reason %q (%s), want dns", p.Reason, p.Error)
	}
}

// Each failing EC2 API answer is a topology problem with its code, counted
// by call and reason; the probes go on, and the failed read is not retried
// every cycle.
func TestEC2Faults(t *testing.T) {
	tests := []struct {
		name   string
		set    func(f *faultLab)
		code   string // the problem's code in the report
		reason string // the topology_refresh_errors_total reason

		// attempts is the most requests one DescribeRouteTables may
		// cost: the SDK retries throttling and 5xx, not refusals.
		attempts int
	}{
		{
			name: "RequestLimitExceeded",
			set: func(f *faultLab) {
				f.ec2.Set("", faults.EC2Fault{Status: 503, Code: "RequestLimitExceeded"})
			},
			code: "RequestLimitExceeded", reason: "throttled", attempts: 3,
		},
		{
			name: "500 InternalError",
			set: func(f *faultLab) {
				f.ec2.Set("", faults.EC2Fault{Status: 500, Code: "InternalError"})
			},
			code: "InternalError", reason: "other", attempts: 3,
		},
		{
			name:     "UnauthorizedOperation",
			set:      func(f *faultLab) { f.lab.EC2.SetDeny("DescribeRouteTables") },
			code:     "UnauthorizedOperation",
			reason:   "unauthorized",
			attempts: 1,
		},
		{
			name: "malformed XML",
			set: func(f *faultLab) {
				f.ec2.Set("DescribeRouteTables", faults.EC2Fault{
					Body: `<DescribeRouteTablesResponse><routeTableSet><item><routeTableId>rtb-`,
				})
			},
			code: "", reason: "other", attempts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultLab(t)
			tt.set(f)
			f.start(t)
			waitFor(t, "a cycle", 15*time.Second, func() bool { return f.cycles(t) >= 1 })
			f.running(t)

			call := map[string]string{"call": "DescribeRouteTables", "reason": tt.reason}
			if v, _ := f.value(t, "pathagent_topology_refresh_errors_total", call); v < 1 {
				t.Errorf("topology_refresh_errors_total%v = %v, want at least 1", call, v)
			}
			if v, _ := f.value(t, "pathagent_topology_refreshes_total", map[string]string{"result": "error"}); v != 1 {
				t.Errorf("topology_refreshes_total{result=error} = %v, want 1", v)
			}
			if v, _ := f.value(t, "pathagent_ec2_api_calls_total",
				map[string]string{"call": "DescribeRouteTables"}); v < 1 || v > float64(tt.attempts) {
				t.Errorf("DescribeRouteTables attempts = %v, want 1 to %d", v, tt.attempts)
			}
			if _, ok := f.value(t, "pathagent_finding", map[string]string{"code": explain.CodeEC2CallFailed}); !ok {
				t.Errorf("finding %s missing", explain.CodeEC2CallFailed)
			}
			rep := f.d.Last()
			found := false
			for _, p := range rep.Network.Problems {
				found = found || p.Call == "DescribeRouteTables" && p.Code == tt.code
			}
			if !found {
				t.Errorf("report problems %+v lack DescribeRouteTables with code %q", rep.Network.Problems, tt.code)
			}

			// Without the route table no path can be judged: the
			// path says unknown rather than guessing; the probes,
			// which need no topology, still succeed.
			if _, ok := f.value(t, "pathagent_path_info",
				map[string]string{"bucket": "lab-data", "kind": "unknown"}); !ok {
				t.Error("path_info kind=unknown missing")
			}
			if v, _ := f.value(t, "pathagent_bucket_reachable", map[string]string{"bucket": "lab-data"}); v != 1 {
				t.Errorf("bucket_reachable = %v, want 1", v)
			}

			// The next read waits at least a minute (doubling for
			// throttling): over several cycles no EC2 call is made.
			before := f.ec2.Calls()
			c0 := f.cycles(t)
			waitFor(t, "several more cycles", 15*time.Second, func() bool { return f.cycles(t) >= c0+4 })
			if after := f.ec2.Calls(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("EC2 called again within the backoff: before %v, after %v", before, after)
			}
			if v, _ := f.value(t, "pathagent_topology_refreshes_total", map[string]string{"result": "error"}); v != 1 {
				t.Errorf("topology_refreshes_total{result=error} = %v after more cycles, want 1", v)
			}
		})
	}
}

// A slow EC2 API delays the topology read but does not fail it.
func TestEC2Slow(t *testing.T) {
	t.Parallel()
	f := newFaultLab(t)
	f.ec2.Set("", faults.EC2Fault{Delay: 300 * time.Millisecond})
	f.start(t)
	waitFor(t, "a cycle", 15*time.Second, func() bool { return f.cycles(t) >= 1 })
	if v, _ := f.value(t, "pathagent_topology_refreshes_total", map[string]string{"result": "success"}); v != 1 {
		t.Errorf("topology_refreshes_total{result=success} = %v, want 1", v)
	}
	if _, ok := f.value(t, "pathagent_path_info",
		map[string]string{"bucket": "lab-data", "kind": "gateway_endpoint"}); !ok {
		t.Error("path_info kind=gateway_endpoint missing")
	}
	f.running(t)
}

// An EC2 API that accepts the request and never answers must not stop the
// daemon: the read gives up, is reported, and the probes go on.
func TestEC2HangDoesNotStopCycles(t *testing.T) {
	t.Parallel()
	f := newFaultLab(t)
	f.ec2.Set("DescribeRouteTables", faults.EC2Fault{Hang: true})
	f.start(t)
	waitFor(t, "a cycle despite a hung EC2 API", 20*time.Second, func() bool { return f.cycles(t) >= 1 })
}

// Throttling backs the topology reads off, and a changed probe outcome
// must not read the topology again before the backoff has run out.
func TestThrottleBackoffSurvivesEarlyRefresh(t *testing.T) {
	t.Parallel()
	f := newFaultLab(t)
	f.ec2.Set("", faults.EC2Fault{Status: 503, Code: "RequestLimitExceeded"})
	f.start(t)
	waitFor(t, "a cycle", 15*time.Second, func() bool { return f.cycles(t) >= 1 })
	before := f.ec2.Calls()["DescribeRouteTables"]

	f.s3.Set(faults.S3Put, faults.S3Fault{Status: 500, Code: "InternalError"})
	f.nextCycle(t)
	f.nextCycle(t)
	if after := f.ec2.Calls()["DescribeRouteTables"]; after != before {
		t.Errorf("DescribeRouteTables called %d times while backing off from throttling, want %d",
			after, before)
	}
}

// Each IMDS fault is counted by its reason within the first cycle, the
// report names it, and the daemon keeps running without asking IMDS again
// every cycle.
func TestIMDSFaults(t *testing.T) {
	mac := labtest.Scenario(t, "gateway-endpoint").Instance.MAC
	eni := "/latest/meta-data/network/interfaces/macs/" + mac + "/"
	tests := []struct {
		name    string
		fault   faults.IMDSFault
		down    bool
		reason  string
		finding string
	}{
		{name: "down", down: true, reason: "unreachable", finding: "imds_unavailable"},
		{
			// A token that never comes looks like the container hop
			// limit, which is how the agent explains it.
			name: "slow", fault: faults.IMDSFault{Delay: 1500 * time.Millisecond},
			reason: "no_token", finding: "imds_no_token",
		},
		{
			name: "401 on every token", fault: faults.IMDSFault{GetStatus: 401},
			reason: "other", finding: "imds_unavailable",
		},
		{
			name: "token refused (IMDSv1 only)", fault: faults.IMDSFault{TokenStatus: 403},
			reason: "no_token", finding: "imds_no_token",
		},
		{
			name: "garbage identity document",
			fault: faults.IMDSFault{Bodies: map[string]string{
				"/latest/dynamic/instance-identity/document": "<html>not json",
			}},
			reason: "other", finding: "imds_unavailable",
		},
		{
			name: "garbage subnet CIDR",
			fault: faults.IMDSFault{Bodies: map[string]string{
				eni + "subnet-ipv4-cidr-block": "10.0.0.0/99",
			}},
			reason: "other", finding: "imds_unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultLab(t)
			f.imds.Set(tt.fault)
			if tt.down {
				f.imdsURL = "http://" + closedAddr(t)
			}
			f.start(t)

			// The first report, caught before the next cycle (an
			// interval later) replaces it.
			waitFor(t, "the first report", 10*time.Second, func() bool { return f.d.Last() != nil })
			rep := f.d.Last()
			if rep.Status != report.Error || len(rep.Findings) == 0 || rep.Findings[0].Code != tt.finding {
				t.Errorf("report = %+v, want status error with finding %s", rep, tt.finding)
			}
			reason := map[string]string{"reason": tt.reason}
			if v, _ := f.value(t, "pathagent_imds_errors_total", reason); v != 1 {
				t.Errorf("imds_errors_total{reason=%s} = %v at the first report, want 1", tt.reason, v)
			}

			// The identity is read again only after identityRetry:
			// not every cycle.
			n := f.imds.Requests()
			time.Sleep(settle)
			f.running(t)
			if got := f.imds.Requests(); got != n {
				t.Errorf("IMDS asked %d more times within %v", got-n, settle)
			}
			if v, _ := f.value(t, "pathagent_imds_errors_total", reason); v != 1 {
				t.Errorf("imds_errors_total{reason=%s} = %v, want 1", tt.reason, v)
			}
		})
	}
}

// Between two identity reads (identityRetry apart) each cycle's report
// must still say why IMDS could not be read, with its fix.
func TestIMDSCauseKeptWhileRetrying(t *testing.T) {
	t.Parallel()
	f := newFaultLab(t)
	f.imds.Set(faults.IMDSFault{TokenStatus: 403})
	f.start(t)
	waitFor(t, "the first report", 10*time.Second, func() bool { return f.d.Last() != nil })
	first := f.d.Last()
	waitFor(t, "a later report", 10*time.Second, func() bool { return f.d.Last() != first })
	if rep := f.d.Last(); len(rep.Findings) == 0 || rep.Findings[0].Code != "imds_no_token" {
		t.Errorf("report while waiting to retry: %+v, want finding imds_no_token", rep.Findings)
	}
}

// IMDS answers that the agent gets past: a token IMDS rejects once (the
// SDK fetches a new one), and an IMDSv1-only service when IMDSv1 is
// allowed.
func TestIMDSRecoverable(t *testing.T) {
	tests := []struct {
		name    string
		fault   faults.IMDSFault
		allowV1 bool
		version int
	}{
		{name: "one 401", fault: faults.IMDSFault{GetStatus: 401, Times: 1}, version: 2},
		{name: "IMDSv1 only, allowed", fault: faults.IMDSFault{TokenStatus: 403}, allowV1: true, version: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultLab(t)
			f.imds.Set(tt.fault)
			f.cfg.AllowIMDSv1 = tt.allowV1
			f.start(t)
			waitFor(t, "a cycle", 15*time.Second, func() bool { return f.cycles(t) >= 1 })
			if _, ok := f.value(t, "pathagent_imds_errors_total", nil); ok {
				t.Error("imds_errors_total exposed after a read that succeeded")
			}
			if rep := f.d.Last(); rep.Identity == nil || rep.Identity.IMDSVersion != tt.version {
				t.Errorf("identity %+v, want IMDS version %d", rep.Identity, tt.version)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
