package netns

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	vpc "github.com/pathagent/pathagent/internal/lab/netns"
	"github.com/pathagent/pathagent/internal/report"
)

const (
	bucket = "lab-data"

	// agentTimeout bounds one `pathagent once`. The slowest case, the
	// blackhole, spends two connect timeouts (5 s each) on list and put.
	agentTimeout = time.Minute

	// daemonTimeout bounds the wait for `pathagent run` to finish its
	// first cycle and show it in its metrics.
	daemonTimeout = 30 * time.Second

	// metricsAddr is where `pathagent run` listens: the instance's own
	// address, scraped from the router namespace as a monitoring host
	// in the VPC would.
	metricsAddr = vpc.InstanceIP + ":19340"

	// daemonInterval is the shortest the configuration allows: the
	// first cycle starts within a tenth of it.
	daemonInterval = "interval: 10s\n"
)

// TestVPC runs `pathagent once` and `pathagent run` in a network-namespace
// VPC with nothing pointed anywhere: no endpoint variables, no resolver or
// S3 endpoint in the configuration. Each case sets the subnet's route
// table in the EC2 API and in the router's kernel together, and checks the
// path the agent reports and what each probe met.
func TestVPC(t *testing.T) {
	requireTools(t)
	bin := buildAgent(t)
	inLab(t, "walkthrough", func(t *testing.T, v *vpc.VPC, m *made) { walkthrough(t, v, bin, m) })
}

func walkthrough(t *testing.T, v *vpc.VPC, bin string, m *made) {
	ctx := t.Context()

	// Allow only the instance's private address: the gateway endpoint
	// keeps it, the internet gateway's NAT replaces it.
	if err := v.S3.SetBucketPolicy(ctx, bucket, onlyFrom(vpc.InstanceIP)); err != nil {
		t.Fatal(err)
	}
	before, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}

	labCA := v.CA.CertPath
	tests := []struct {
		name string
		path vpc.Path

		// caBundle is AWS_CA_BUNDLE, unset when empty; SSL_CERT_FILE
		// is always the lab CA.
		caBundle string

		wantStatus report.Status
		wantPath   string // kind target route-table

		// wantReasons maps each op to its failure reason; "" means
		// success, "skipped" not sent.
		wantReasons map[string]string

		// wantError is part of the first probe's error.
		wantError string

		// wantSeen is the address S3 logs for the agent's requests;
		// empty when none reach it.
		wantSeen string

		// wantFindings are finding codes that must be reported.
		wantFindings []string
	}{
		{
			name:        "gateway endpoint",
			path:        vpc.ViaGatewayEndpoint,
			caBundle:    labCA,
			wantStatus:  report.OK,
			wantPath:    "gateway_endpoint " + vpc.GatewayEndpoint + " " + vpc.RouteTableID,
			wantReasons: map[string]string{"list": "", "put": "", "get": "", "delete": ""},
			wantSeen:    vpc.InstanceIP,
			// The lab's authority is not one S3 uses: to the agent it
			// is a middlebox decrypting the traffic, as it should be.
			wantFindings: []string{"tls_intercepted"},
		},
		{
			// Without AWS_CA_BUNDLE, the Go roots, which read
			// SSL_CERT_FILE, are all the agent trusts.
			name:        "no CA bundle",
			path:        vpc.ViaGatewayEndpoint,
			wantStatus:  report.OK,
			wantPath:    "gateway_endpoint " + vpc.GatewayEndpoint + " " + vpc.RouteTableID,
			wantReasons: map[string]string{"list": "", "put": "", "get": "", "delete": ""},
			wantSeen:    vpc.InstanceIP,
		},
		{
			// The SDK makes AWS_CA_BUNDLE the only roots, replacing
			// the system's: the lab CA in SSL_CERT_FILE is no longer
			// trusted, by the EC2 client or the probes.
			name:        "CA bundle without the lab CA",
			path:        vpc.ViaGatewayEndpoint,
			caBundle:    systemBundle(),
			wantStatus:  report.Failed,
			wantPath:    "unknown",
			wantReasons: failedBoth("tls"),
			wantError:   "certificate signed by unknown authority",
		},
		{
			name:        "internet gateway, policy wants the private address",
			path:        vpc.ViaInternetGateway,
			caBundle:    labCA,
			wantStatus:  report.Failed,
			wantPath:    "internet_gateway " + vpc.InternetGateway + " " + vpc.RouteTableID,
			wantReasons: failedBoth("access_denied"),
			wantSeen:    vpc.PublicIP,
			// The policy denies everything from the public address,
			// GetBucketPolicy too, so the agent can only say it could
			// not check it.
			wantFindings: []string{"bucket_policy_unreadable", "access_denied"},
		},
		{
			name:         "blackhole",
			path:         vpc.ViaBlackhole,
			caBundle:     labCA,
			wantStatus:   report.Failed,
			wantPath:     "blackhole " + vpc.DeletedNAT + " " + vpc.RouteTableID,
			wantReasons:  failedBoth("connect_timeout"),
			wantError:    "i/o timeout",
			wantFindings: []string{"blackhole_route"},
		},
		{
			// The kernel's prohibit route answers with ICMP; the
			// connect fails at once with "no route to host".
			name:        "prohibit",
			path:        vpc.ViaNoRoute,
			caBundle:    labCA,
			wantStatus:  report.Failed,
			wantPath:    "no_route " + vpc.RouteTableID,
			wantReasons: failedBoth("network"),
			wantError:   "no route to host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.SetPath(ctx, tt.path); err != nil {
				t.Fatal(err)
			}
			requireContained(t, v)
			mark := logSize(t, v.S3.AccessLog)

			rep, pid := once(t, v, bin, tt.caBundle, "--bucket", bucket)
			m.pids[pid] = "pathagent once"

			if rep.Status != tt.wantStatus {
				t.Errorf("status %s, want %s", rep.Status, tt.wantStatus)
			}
			if rep.Identity == nil || rep.Identity.InstanceID != vpc.InstanceID ||
				rep.Identity.IMDSVersion != 2 {
				t.Errorf("identity %+v, want %s over IMDSv2", rep.Identity, vpc.InstanceID)
			}
			if rep.Resolver != vpc.ResolverIP+":53" {
				t.Errorf("resolver %q, want the VPC resolver from resolv.conf", rep.Resolver)
			}
			if len(rep.Buckets) != 1 {
				t.Fatalf("%d buckets in the report, want 1", len(rep.Buckets))
			}
			b := rep.Buckets[0]
			got := strings.Join(strings.Fields(b.Path.Kind+" "+b.Path.Target+" "+b.Path.RouteTableID), " ")
			if got != tt.wantPath {
				t.Errorf("path %q, want %q", got, tt.wantPath)
			}
			for _, p := range b.Probes {
				want, ok := tt.wantReasons[p.Op]
				reason := p.Reason
				if p.Skipped {
					reason = "skipped"
				}
				if !ok || reason != want {
					t.Errorf("%s: reason %q, want %q (failed_in %s, %s %s)",
						p.Op, reason, want, p.FailedIn, p.ErrorCode, p.Error)
				}
			}

			if len(b.Probes) == 0 || !strings.Contains(b.Probes[0].Error, tt.wantError) {
				t.Errorf("first probe's error does not say %q: %+v", tt.wantError, b.Probes)
			}

			for _, code := range tt.wantFindings {
				found := false
				for _, f := range rep.Findings {
					found = found || f.Code == code
				}
				if !found {
					t.Errorf("finding %s missing: %s", code, summary(rep))
				}
			}

			seen := sources(t, v.S3.AccessLog, mark)
			if len(seen) > 0 {
				t.Logf("S3 access log: %s", vpc.LogTail(v.S3.AccessLog, 1))
			}
			switch {
			case tt.wantSeen == "" && len(seen) > 0:
				t.Errorf("S3 saw requests from %v, want none", seen)
			case tt.wantSeen != "" && !slices.Equal(seen, []string{tt.wantSeen}):
				t.Errorf("S3 saw requests from %v, want only %s", seen, tt.wantSeen)
			}
		})
	}

	t.Run("run, scraped", func(t *testing.T) {
		if err := v.SetPath(ctx, vpc.ViaGatewayEndpoint); err != nil {
			t.Fatal(err)
		}
		requireContained(t, v)
		pid := daemon(t, v, bin)
		m.pids[pid] = "pathagent run"
	})

	// Probe objects are deleted, whatever the path.
	after, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("bucket contents changed:\nbefore %v\nafter  %v", before, after)
	}
}

// failedBoth is what the probes meet when every request fails for reason:
// list and put fail, and get and delete, which need the put's object, are
// not sent.
func failedBoth(reason string) map[string]string {
	return map[string]string{"list": reason, "put": reason, "get": "skipped", "delete": "skipped"}
}

// once runs `pathagent once ARGS... --json` in the instance namespace and
// returns its report and pid.
func once(t *testing.T, v *vpc.VPC, bin, caBundle string, args ...string) (*report.Report, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), agentTimeout)
	defer cancel()

	args = append(append([]string{"once"}, args...), "--json")
	cmd := v.Instance.CommandContext(ctx, bin, args...)
	cmd.Env = agentEnv(v, caBundle)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()

	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run pathagent: %v\n%s", err, stderr.String())
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != rep.Status.ExitCode() {
		t.Errorf("exit %d for status %s", code, rep.Status)
	}
	t.Logf("%s", summary(&rep))
	return &rep, cmd.Process.Pid
}

// agentEnv is a clean environment with the lab's credentials, the lab CA
// in SSL_CERT_FILE, and AWS_CA_BUNDLE as given (unset when empty).
func agentEnv(v *vpc.VPC, caBundle string) []string {
	var env []string
	for _, kv := range lab.CleanEnv(os.Environ()) {
		k, _, _ := strings.Cut(kv, "=")
		if k != "SSL_CERT_FILE" && k != "AWS_CA_BUNDLE" {
			env = append(env, kv)
		}
	}
	env = append(env, v.AgentEnv()...)
	env = append(env, "SSL_CERT_FILE="+v.CA.CertPath)
	if caBundle != "" {
		env = append(env, "AWS_CA_BUNDLE="+caBundle)
	}
	return env
}

// daemon runs `pathagent run` in the instance namespace, scrapes it from
// the router namespace until its first cycle shows, checks the metrics,
// stops it with SIGTERM and returns its pid.
func daemon(t *testing.T, v *vpc.VPC, bin string) int {
	t.Helper()
	p := startRun(t, v, bin, "buckets:\n  - "+bucket+"\n"+daemonInterval)

	client := v.Router.HTTPClient(nil, "")
	deadline := time.Now().Add(daemonTimeout)
	var metrics string
	var err error
	for {
		metrics, err = scrape(t.Context(), client)
		if err == nil && strings.Contains(metrics, "\npathagent_cycles_total 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cycle in the metrics after %s (last error %v); log:\n%s",
				daemonTimeout, err, vpc.LogTail(p.LogPath, 20))
		}
		select {
		case <-p.Exited():
			t.Fatal(p.ExitError())
		case <-time.After(200 * time.Millisecond):
		}
	}

	for _, want := range []string{
		fmt.Sprintf(`pathagent_path_info{bucket=%q,kind="gateway_endpoint",route_table=%q,target=%q} 1`,
			bucket, vpc.RouteTableID, vpc.GatewayEndpoint),
		fmt.Sprintf(`pathagent_bucket_reachable{bucket=%q} 1`, bucket),
		fmt.Sprintf(`pathagent_probe_success{bucket=%q,op="put"} 1`, bucket),
		fmt.Sprintf(`pathagent_probe_success{bucket=%q,op="delete"} 1`, bucket),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	t.Logf("scraped http://%s/metrics from %s: %s", metricsAddr, v.Router.Name,
		grepLines(metrics, "pathagent_path_info", "pathagent_bucket_reachable"))

	pid := p.Pid()
	if err := p.Stop(); err != nil {
		t.Errorf("stop pathagent run: %v", err)
	}
	return pid
}

// startRun writes config and runs `pathagent run` with it in the instance
// namespace, serving its metrics on metricsAddr, until the test ends.
func startRun(t *testing.T, v *vpc.VPC, bin, config string) *vpc.Proc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pathagent.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := v.Instance.Command(bin, "run", "--config", cfg,
		"--web.listen-address", metricsAddr, "--log-level", "debug")
	cmd.Env = agentEnv(v, v.CA.CertPath)
	p, err := vpc.StartProc("pathagent run", cmd, filepath.Join(dir, "pathagent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return p
}

func scrape(ctx context.Context, client *http.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape: %s", resp.Status)
	}
	return string(body), nil
}

// onlyFrom is a bucket policy that lets the agent do anything on the
// bucket, standing in for its IAM policy (versitygw has no identity
// policies), and denies every request not from addr.
func onlyFrom(addr string) string {
	resources := []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{
				"Sid":       "AgentAccess",
				"Effect":    "Allow",
				"Principal": map[string]any{"AWS": lab.AgentAccessKeyID},
				"Action":    "s3:*",
				"Resource":  resources,
			},
			{
				"Sid":       "OnlyFromThePrivateAddress",
				"Effect":    "Deny",
				"Principal": "*",
				"Action":    "s3:*",
				"Resource":  resources,
				"Condition": map[string]any{
					"NotIpAddress": map[string]any{"aws:SourceIp": addr + "/32"},
				},
			},
		},
	}
	out, _ := json.Marshal(doc) // a map of strings always encodes
	return string(out)
}

// requireContained stops the test before any probe if a namespace of the
// lab has a way out of the machine.
func requireContained(t *testing.T, v *vpc.VPC) {
	t.Helper()
	if err := v.Contained(t.Context()); err != nil {
		t.Fatalf("the lab is not closed off, no probe sent:\n%v", err)
	}
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range v.Links() {
		if bytes.Contains(out, []byte(l+"@")) || bytes.Contains(out, []byte(l+":")) {
			t.Fatalf("link %s is in the machine's own namespace", l)
		}
	}
}

// sources returns the distinct client addresses in the access log after
// offset, in order of appearance.
func sources(t *testing.T, path string, offset int64) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if a := remoteIP(sc.Text()); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func logSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func summary(rep *report.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %s", rep.Status)
	for _, bk := range rep.Buckets {
		fmt.Fprintf(&b, "; %s path %s %s %s", bk.Name, bk.Path.Kind, bk.Path.Target, bk.Path.RouteTableID)
		for _, p := range bk.Probes {
			switch {
			case p.Skipped:
				fmt.Fprintf(&b, "; %s skipped", p.Op)
			case p.Success:
				fmt.Fprintf(&b, "; %s ok via %s", p.Op, p.Remote)
			default:
				fmt.Fprintf(&b, "; %s %s (%s) via %s", p.Op, p.Reason, p.FailedIn, p.Remote)
			}
		}
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "; finding %s", f.Code)
	}
	if rep.Network != nil {
		for _, p := range rep.Network.Problems {
			fmt.Fprintf(&b, "; ec2 problem %+v", p)
		}
	}
	return b.String()
}

func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "; ")
}
