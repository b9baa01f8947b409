package s3lab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// testTimeout bounds each test's calls; a healthy lab answers in
// milliseconds.
const testTimeout = 30 * time.Second

// agent is the account the probing agent would use.
var agent = Credentials{
	AccessKeyID:     "AKIALABAGENT0000001",
	SecretAccessKey: "lab-agent-secret-0000000000000000000000",
}

// startLab starts a lab in a temporary directory and stops it when the
// test ends. A missing versitygw fails the test: the lab tests are the
// point of this package, so skipping would hide that they never ran.
func startLab(t *testing.T, s *scenario.Scenario) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	l, err := Start(ctx, t.TempDir(), s, agent)
	if errors.Is(err, ErrNoVersitygw) {
		t.Fatalf("versitygw is missing: run `make tools` (%v)", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return l
}

// frontClient returns an agent client that reaches the lab through the
// front at addr.
func frontClient(l *Lab, addr, region string) *s3.Client {
	url := "http://" + net.JoinHostPort(addr, strconv.Itoa(l.Port()))
	return newClient(url, region, agent)
}

// errorCode returns the S3 error code of err, "" for nil, or the error
// text when err carries no code.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestGatewayEndpointScenario(t *testing.T) {
	path := filepath.Join("..", "..", "..", "lab", "scenarios", "gateway-endpoint.yaml")
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l := startLab(t, s)
	ctx := testContext(t)
	c := frontClient(l, "127.52.216.10", "us-east-1")
	const bucket = "lab-data"
	const seeded = "reports/2026-12-01.csv"

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list through front: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != seeded {
		t.Fatalf("list through front: got %d objects, want only %s", len(list.Contents), seeded)
	}

	got := getObject(ctx, t, c, bucket, seeded)
	if want := s.Buckets[0].Objects[seeded]; got != want {
		t.Errorf("get %s = %q, want %q", seeded, got, want)
	}

	// A probe's own object goes in, comes back, and goes away.
	const probeKey = "pathagent-probe/test"
	const probeBody = "probe body"
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(probeKey),
		Body:   strings.NewReader(probeBody),
	})
	if err != nil {
		t.Fatalf("put through front: %v", err)
	}
	if got := getObject(ctx, t, c, bucket, probeKey); got != probeBody {
		t.Errorf("get %s = %q, want %q", probeKey, got, probeBody)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(probeKey),
	})
	if err != nil {
		t.Fatalf("delete through front: %v", err)
	}

	// Root's view confirms the probe left only the seeded object.
	objs, err := l.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{seeded: int64(len(s.Buckets[0].Objects[seeded]))}
	if len(objs) != len(want) || objs[seeded] != want[seeded] {
		t.Errorf("ListObjects = %v, want %v", objs, want)
	}
}

func getObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return string(b)
}

// Addresses of the two-front scenario: the same S3 service seen through a
// gateway endpoint (source: the instance's private address) and through a
// NAT gateway (source: the NAT's public address).
const (
	privateFront  = "127.52.216.10"
	publicFront   = "127.52.216.11"
	instanceIP    = "127.16.1.10"
	natIP         = "127.100.0.20"
	policyBucket  = "policy-lab"
	policyRegion  = "us-east-1"
	seededPolicyK = "seed.txt"
)

// denyUnlessFrom is a policy that denies everything unless the request
// comes from ip, as S3 sees it.
func denyUnlessFrom(ip string) string {
	return `{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "OnlyFromOneAddress",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::` + policyBucket + `", "arn:aws:s3:::` + policyBucket + `/*"],
    "Condition": {"NotIpAddress": {"aws:SourceIp": "` + ip + `/32"}}
  }]
}`
}

func twoFrontScenario() *scenario.Scenario {
	return &scenario.Scenario{
		Name:   "two-fronts",
		Region: policyRegion,
		S3: []scenario.S3Server{{
			Region: policyRegion,
			Fronts: []scenario.Front{
				{Address: privateFront, Source: instanceIP},
				{Address: publicFront, Source: natIP},
			},
		}},
		Buckets: []scenario.Bucket{{
			Name:    policyBucket,
			Region:  policyRegion,
			Policy:  denyUnlessFrom(instanceIP),
			Objects: map[string]string{seededPolicyK: "x"},
		}},
	}
}

func TestSourceIPPolicy(t *testing.T) {
	l := startLab(t, twoFrontScenario())
	ctx := testContext(t)
	private := frontClient(l, privateFront, policyRegion)
	public := frontClient(l, publicFront, policyRegion)

	// Steps run in order: each one may change the policy for the next.
	steps := []struct {
		name string
		// setPolicy, when non-nil, replaces the policy before the step.
		setPolicy   *string
		wantPrivate string // S3 error code through the private front
		wantPublic  string // and through the public one
	}{
		{
			name:        "scenario policy allows only the private address",
			wantPrivate: "",
			wantPublic:  "AccessDenied",
		},
		{
			name:        "policy removed at run time",
			setPolicy:   aws.String(""),
			wantPrivate: "",
			wantPublic:  "",
		},
		{
			name:        "policy flipped to the NAT address",
			setPolicy:   aws.String(denyUnlessFrom(natIP)),
			wantPrivate: "AccessDenied",
			wantPublic:  "",
		},
	}
	for _, st := range steps {
		if st.setPolicy != nil {
			if err := l.SetBucketPolicy(ctx, policyBucket, *st.setPolicy); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		for _, side := range []struct {
			name   string
			client *s3.Client
			want   string
		}{
			{"private", private, st.wantPrivate},
			{"public", public, st.wantPublic},
		} {
			_, err := side.client.GetObject(ctx, &s3.GetObjectInput{
				Bucket: aws.String(policyBucket),
				Key:    aws.String(seededPolicyK),
			})
			if got := errorCode(err); got != side.want {
				t.Errorf("%s: get through %s front: code %q, want %q (err %v)",
					st.name, side.name, got, side.want, err)
			}

			// The denial must come from the policy, not from a
			// missing grant, which S3 words differently.
			const byPolicy = "explicit deny in a resource-based policy"
			if err != nil && !strings.Contains(err.Error(), byPolicy) {
				t.Errorf("%s: %s front: error %q does not say %q",
					st.name, side.name, err, byPolicy)
			}
		}
	}

	// The root account is never denied, so audits always see the truth.
	objs, err := l.ListObjects(ctx, policyBucket)
	if err != nil {
		t.Fatalf("ListObjects as root: %v", err)
	}
	if _, ok := objs[seededPolicyK]; !ok {
		t.Errorf("ListObjects = %v, want %s", objs, seededPolicyK)
	}
}

func TestUnknownBucket(t *testing.T) {
	l := startLab(t, twoFrontScenario())
	ctx := testContext(t)

	err := l.SetBucketPolicy(ctx, "no-such-bucket", "")
	want := "find bucket no-such-bucket: not a scenario bucket"
	if err == nil || err.Error() != want {
		t.Errorf("SetBucketPolicy: %v, want %q", err, want)
	}
}

// TestServerQuirks pins where versitygw agrees with S3 on HeadBucket and
// where it does not, since the agent's tests depend on it.
func TestServerQuirks(t *testing.T) {
	l := startLab(t, twoFrontScenario())
	ctx := testContext(t)

	tests := []struct {
		name       string
		front      string
		region     string // the region the request is signed for
		wantStatus int
		// wantRegion is the x-amz-bucket-region header.
		wantRegion string
	}{
		{
			name:       "allowed",
			front:      privateFront,
			region:     policyRegion,
			wantStatus: 200,
			wantRegion: policyRegion,
		},
		{
			// As on S3, a denied HeadBucket still names the region.
			name:       "denied by bucket policy",
			front:      publicFront,
			region:     policyRegion,
			wantStatus: 403,
			wantRegion: policyRegion,
		},
		{
			// S3 answers 301 (or 400) with the header; versitygw
			// answers 400 without it.
			name:       "signed for another region",
			front:      privateFront,
			region:     "eu-west-1",
			wantStatus: 400,
			wantRegion: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, region := headBucket(ctx, frontClient(l, tt.front, tt.region), policyBucket)
			if status != tt.wantStatus || region != tt.wantRegion {
				t.Errorf("HeadBucket = %d, region %q; want %d, region %q",
					status, region, tt.wantStatus, tt.wantRegion)
			}
		})
	}

	// A request with a body names the problem; HEAD has no body, so the
	// SDK can only report "BadRequest".
	wrong := frontClient(l, privateFront, "eu-west-1")
	_, err := wrong.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(policyBucket)})
	if got, want := errorCode(err), "AuthorizationHeaderMalformed"; got != want {
		t.Errorf("list signed for another region: code %q, want %q", got, want)
	}
}

// headBucket returns the HTTP status of a HeadBucket and its
// x-amz-bucket-region header, or status 0 when no response came.
func headBucket(ctx context.Context, c *s3.Client, bucket string) (int, string) {
	out, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return 200, aws.ToString(out.BucketRegion)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		return 0, ""
	}
	return re.HTTPStatusCode(), re.Response.Header.Get("X-Amz-Bucket-Region")
}

// childPIDs returns the processes whose parent is this test binary,
// zombies included.
func childPIDs(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited while we looked
		}
		// The command name may hold spaces; fields resume after ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}

func TestStopLeavesNothing(t *testing.T) {
	ctx := testContext(t)
	l, err := Start(ctx, t.TempDir(), twoFrontScenario(), agent)
	if err != nil {
		t.Fatalf("Start: %v (run `make tools` if versitygw is missing)", err)
	}

	// Stop is safe to repeat; this one only matters if a check below
	// fails before the explicit Stop.
	t.Cleanup(func() { l.Stop() })
	pid := l.gateways[policyRegion].pid()

	// An open keep-alive connection must not hold Stop up.
	c := frontClient(l, privateFront, policyRegion)
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(policyBucket)}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	port := l.Port()

	if err := l.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := l.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// ESRCH means the process is gone and reaped: a zombie still exists
	// for kill(2).
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("versitygw pid %d after Stop: kill 0 = %v, want ESRCH", pid, err)
	}
	if kids := childPIDs(t); len(kids) != 0 {
		t.Errorf("child processes after Stop: %v", kids)
	}
	for _, a := range []string{privateFront, publicFront} {
		addr := net.JoinHostPort(a, strconv.Itoa(port))
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("front %s still accepts after Stop", addr)
		}
	}
}

func TestStartFailureStopsEverything(t *testing.T) {
	s := twoFrontScenario()

	// The second server starts fine; the clash is only found when the
	// fronts open, after both versitygw processes run.
	s.S3 = append(s.S3, scenario.S3Server{
		Region: "eu-west-1",
		Fronts: []scenario.Front{{Address: privateFront, Source: natIP}},
	})
	l, err := Start(testContext(t), t.TempDir(), s, agent)
	if err == nil {
		l.Stop()
		t.Fatal("Start succeeded with one front address used twice")
	}
	want := "open s3 fronts: address " + privateFront + " used twice"
	if err.Error() != want {
		t.Errorf("Start: %v, want %q", err, want)
	}
	if kids := childPIDs(t); len(kids) != 0 {
		t.Errorf("child processes after failed Start: %v", kids)
	}
}

func TestFindVersitygw(t *testing.T) {
	// fakeBin makes an executable named versitygw in a new directory.
	fakeBin := func(t *testing.T) string {
		dir := t.TempDir()
		p := filepath.Join(dir, "versitygw")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	tests := []struct {
		name string
		// where is "path", "gobin", "gopath" or "" for nowhere.
		where   string
		wantErr error
	}{
		{name: "on PATH", where: "path"},
		{name: "in GOBIN", where: "gobin"},
		{name: "in GOPATH/bin", where: "gopath"},
		{name: "nowhere", where: "", wantErr: ErrNoVersitygw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			empty := t.TempDir()
			t.Setenv("PATH", empty)
			t.Setenv("GOBIN", "")
			t.Setenv("GOPATH", empty)
			t.Setenv("HOME", empty)

			var want string
			switch tt.where {
			case "path", "gobin":
				dir := fakeBin(t)
				t.Setenv(map[string]string{"path": "PATH", "gobin": "GOBIN"}[tt.where], dir)
				want = filepath.Join(dir, "versitygw")
			case "gopath":
				gopath := t.TempDir()
				if err := os.Mkdir(filepath.Join(gopath, "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(gopath, "bin", "versitygw"), nil, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Setenv("GOPATH", gopath)
				want = filepath.Join(gopath, "bin", "versitygw")
			}

			got, err := findVersitygw()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("findVersitygw error = %v, want %v", err, tt.wantErr)
			}
			if got != want {
				t.Errorf("findVersitygw = %q, want %q", got, want)
			}
			if err != nil && !strings.Contains(err.Error(), "make tools") {
				t.Errorf("error %q does not say to run make tools", err)
			}
		})
	}
}
