package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/net/http/httpproxy"

	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/s3lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
	"github.com/pathagent/pathagent/internal/resolve"
)

var agentCreds = s3lab.Credentials{
	AccessKeyID:     "AKIAPROBETEST0000001",
	SecretAccessKey: "probe-test-secret-00000000000000000000",
}

const prefix = "pathagent-probe/i-test/"

// world is a small S3 on loopback: versitygw behind a front at
// 127.52.216.10, and a resolver that maps the S3 name there.
type world struct {
	s3  *s3lab.Lab
	dns *dnsserver.Server
	dir string
}

func newWorld(t *testing.T, policy string) *world {
	t.Helper()
	return newWorldWith(t, policy, map[string]string{"user/data.txt": "keep me"})
}

func newWorldWith(t *testing.T, policy string, objects map[string]string) *world {
	t.Helper()
	s := &scenario.Scenario{
		Name:   "probes",
		Region: "us-east-1",
		S3: []scenario.S3Server{{
			Region: "us-east-1",
			Fronts: []scenario.Front{{Address: "127.52.216.10", Source: "127.16.1.10"}},
		}},
		Buckets: []scenario.Bucket{{
			Name:    "probe-bucket",
			Region:  "us-east-1",
			Policy:  policy,
			Objects: objects,
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	l, err := s3lab.Start(ctx, dir, s, agentCreds)
	if err != nil {
		t.Fatalf("start s3 lab (run `make tools` if versitygw is missing): %v", err)
	}
	t.Cleanup(func() { l.Stop() })

	d, err := dnsserver.Start("127.0.0.1:0", []scenario.Record{
		{Name: "s3.us-east-1.amazonaws.com", A: []string{"127.52.216.10"}},
		{Name: "s3.dead.amazonaws.com", A: []string{"127.52.217.99"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &world{s3: l, dns: d, dir: dir}
}

func (w *world) prober(endpointHost string) *Prober {
	return &Prober{
		Config: aws.Config{
			Credentials: credentials.NewStaticCredentialsProvider(
				agentCreds.AccessKeyID, agentCreds.SecretAccessKey, ""),
		},
		Resolver:  &resolve.Resolver{Server: w.dns.Addr()},
		Region:    "us-east-1",
		Endpoint:  fmt.Sprintf("http://%s:%d", endpointHost, w.s3.Port()),
		PathStyle: true,
		Prefix:    prefix,
		Timeout:   5 * time.Second,
		Proxy:     &httpproxy.Config{},
	}
}

func TestRunAllSucceed(t *testing.T) {
	w := newWorld(t, "")
	p := w.prober("s3.us-east-1.amazonaws.com")

	res := p.Run(context.Background(), Bucket{Name: "probe-bucket"})

	var ops []string
	for _, r := range res.Probes {
		ops = append(ops, string(r.Op))
		if !r.Success {
			t.Errorf("%s failed in %s: %s %s", r.Op, r.FailedIn, r.Code, r.Error)
		}
		// The address the connection used, from the connection.
		if want := netip.MustParseAddr("127.52.216.10"); r.Remote.Addr() != want {
			t.Errorf("%s: remote %v, want %v", r.Op, r.Remote, want)
		}
		if r.Host != "s3.us-east-1.amazonaws.com" || r.Resolution == nil {
			t.Errorf("%s: host %q resolution %v, want the S3 name resolved", r.Op, r.Host, r.Resolution)
		}
		if r.Op != List && !strings.HasPrefix(r.Key, prefix) {
			t.Errorf("%s: key %q outside the probe prefix %q", r.Op, r.Key, prefix)
		}
		if r.Timings.Total <= 0 || r.Timings.Connect <= 0 {
			t.Errorf("%s: timings %+v, want connect and total measured", r.Op, r.Timings)
		}
	}
	if got := strings.Join(ops, ","); got != "list,put,get,delete" {
		t.Errorf("ops %s, want list,put,get,delete", got)
	}
	if res.PolicyRead || res.Policy != "" {
		t.Error("the policy was read though nothing was denied")
	}

	// Nothing is left behind, and the user's object is untouched.
	objs, err := w.s3.ListObjects(context.Background(), "probe-bucket")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs["user/data.txt"] != int64(len("keep me")) {
		t.Errorf("bucket holds %v, want only user/data.txt", objs)
	}
}

// A bucket policy that denies writes makes put fail with S3's own answer;
// get and delete are skipped, not failed.
func TestRunPutDenied(t *testing.T) {
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
		"Action":"s3:PutObject","Resource":"arn:aws:s3:::probe-bucket/*"}]}`
	w := newWorld(t, policy)

	res := w.prober("s3.us-east-1.amazonaws.com").Run(context.Background(), Bucket{Name: "probe-bucket"})

	want := []struct {
		op      Op
		success bool
		skipped bool
		code    string
	}{
		{List, true, false, ""},
		{Put, false, false, "AccessDenied"},
		{Get, false, true, ""},
		{Delete, false, true, ""},
	}
	for i, w := range want {
		r := res.Probes[i]
		if r.Op != w.op || r.Success != w.success || r.Skipped != w.skipped || r.Code != w.code {
			t.Errorf("probe %d: %s success=%v skipped=%v code=%q; want %s %v %v %q",
				i, r.Op, r.Success, r.Skipped, r.Code, w.op, w.success, w.skipped, w.code)
		}
	}
	if put := res.Probes[1]; put.HTTPStatus != 403 || put.FailedIn != PhaseRequest {
		t.Errorf("put: status %d failed in %q, want 403 in request", put.HTTPStatus, put.FailedIn)
	}

	// The denial makes the prober read the policy, to explain it.
	if !res.PolicyRead || !strings.Contains(res.Policy, `"Deny"`) {
		t.Errorf("policy read=%v error=%q doc=%q, want the denying policy", res.PolicyRead, res.PolicyError, res.Policy)
	}
}

func TestRunFailurePhases(t *testing.T) {
	w := newWorld(t, "")

	tests := []struct {
		name       string
		host       string
		wantPhase  Phase
		wantRemote string
	}{
		{"name does not resolve", "s3.nowhere.amazonaws.com", PhaseResolve, ""},
		{"nothing listens", "s3.dead.amazonaws.com", PhaseConnect, "127.52.217.99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := w.prober(tt.host).Run(context.Background(), Bucket{Name: "probe-bucket"})

			list := res.Probes[0]
			if list.Success || list.FailedIn != tt.wantPhase {
				t.Errorf("list: success=%v failed in %q, want failure in %q (%s)",
					list.Success, list.FailedIn, tt.wantPhase, list.Error)
			}
			got := ""
			if list.Remote.IsValid() {
				got = list.Remote.Addr().String()
			}
			if got != tt.wantRemote {
				t.Errorf("remote %q, want %q", got, tt.wantRemote)
			}
		})
	}
}

// An object that reads back different from what was written fails the get
// in the verify phase, and the delete still runs. No real S3 corrupts
// objects, so a small handler plays one that does.
func TestGetMismatch(t *testing.T) {
	var deleted bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			if r.URL.Query().Get("list-type") == "2" {
				fmt.Fprint(w, `<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>`)
				return
			}
			fmt.Fprint(w, "not what was written")
		case http.MethodPut:
			w.Header().Set("ETag", `"x"`)
		case http.MethodDelete:
			deleted = true
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()

	p := &Prober{
		Config:    aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIA", "secret", "")},
		Resolver:  &resolve.Resolver{Server: "127.0.0.1:1"},
		Region:    "us-east-1",
		Endpoint:  srv.URL,
		PathStyle: true,
		Prefix:    prefix,
		Proxy:     &httpproxy.Config{},
	}
	res := p.Run(context.Background(), Bucket{Name: "bucket"})

	get := res.Probes[2]
	if get.Success || get.FailedIn != PhaseVerify {
		t.Errorf("get: success=%v failed in %q, want a verify failure", get.Success, get.FailedIn)
	}
	if !deleted || !res.Probes[3].Success {
		t.Errorf("delete did not run after the mismatch")
	}
}

// With a proxy in the environment the request goes to the proxy: the
// probe names it, and the remote address is the proxy's.
func TestProxyRecorded(t *testing.T) {
	var got string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.String()
		w.WriteHeader(http.StatusForbidden)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)

	p := &Prober{
		Config:    aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIA", "secret", "")},
		Resolver:  &resolve.Resolver{Server: "127.0.0.1:1"},
		Region:    "us-east-1",
		Endpoint:  "http://s3.us-east-1.amazonaws.com",
		PathStyle: true,
		Prefix:    prefix,
		Proxy:     &httpproxy.Config{HTTPProxy: proxy.URL},
	}
	list := p.Run(context.Background(), Bucket{Name: "bucket"}).Probes[0]

	if list.Proxy != pu.Host {
		t.Errorf("proxy %q, want %q", list.Proxy, pu.Host)
	}
	if list.Remote.String() != pu.Host {
		t.Errorf("remote %v, want the proxy's address %s", list.Remote, pu.Host)
	}
	if !strings.HasPrefix(got, "http://s3.us-east-1.amazonaws.com/bucket") {
		t.Errorf("proxy saw %q, want the S3 URL", got)
	}
}

func TestShortError(t *testing.T) {
	_, err := net.Dial("tcp", "127.0.0.1:1")
	wrapped := fmt.Errorf("operation error S3: ListObjectsV2: %w", &url.Error{Op: "Get", URL: "http://x", Err: err})
	if got := shortError(wrapped); got != err.Error() {
		t.Errorf("shortError = %q, want %q", got, err.Error())
	}
}

// A probe object an interrupted run left behind is deleted by the next
// run's list; a fresh one (another run's, in flight) and anything not named
// like a probe object stay.
func TestSweepRemovesLeftovers(t *testing.T) {
	leftover := prefix + "20200101T000000Z-0123456789abcdef.probe"
	fresh := prefix + "20991231T000000Z-fedcba9876543210.probe"
	notes := prefix + "notes.txt"
	w := newWorldWith(t, "", map[string]string{leftover: "x", fresh: "y", notes: "z"})

	// versitygw's posix backend takes LastModified from the file.
	old := time.Now().Add(-time.Hour)
	for _, key := range []string{leftover, notes} {
		path := filepath.Join(w.dir, "s3-us-east-1", "data", "probe-bucket", key)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}

	res := w.prober("s3.us-east-1.amazonaws.com").Run(context.Background(), Bucket{Name: "probe-bucket"})

	if res.Swept != 1 {
		t.Errorf("swept %d objects, want 1", res.Swept)
	}
	objs, err := w.s3.ListObjects(context.Background(), "probe-bucket")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := objs[leftover]; ok {
		t.Error("the stale probe object is still there")
	}
	for _, key := range []string{fresh, notes} {
		if _, ok := objs[key]; !ok {
			t.Errorf("%s was deleted", key)
		}
	}
}

// Over TLS the probe records who issued the server's certificate, so that
// an intercepting middlebox can be told from S3.
func TestIssuersRecorded(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>`)
	}))
	defer srv.Close()

	cfg := aws.Config{
		Credentials: credentials.NewStaticCredentialsProvider("AKIA", "secret", ""),
		HTTPClient:  nil,
	}
	p := &Prober{
		Config:    cfg,
		Resolver:  &resolve.Resolver{Server: "127.0.0.1:1"},
		Region:    "us-east-1",
		Endpoint:  srv.URL,
		PathStyle: true,
		Prefix:    prefix,
		Proxy:     &httpproxy.Config{},
	}
	// Trust the test server's certificate the way AWS_CA_BUNDLE would.
	p.Config.HTTPClient = trusting(srv)

	list := p.Run(context.Background(), Bucket{Name: "b"}).Probes[0]
	if !list.Success {
		t.Fatalf("list failed: %s", list.Error)
	}
	// httptest's certificate is issued by "Acme Co".
	if len(list.Issuers) == 0 || list.Issuers[0] != "Acme Co" {
		t.Errorf("issuers %v, want Acme Co first", list.Issuers)
	}
	if list.Timings.TLS <= 0 {
		t.Errorf("TLS phase not measured: %+v", list.Timings)
	}
}

// trusting returns an SDK HTTP client that trusts srv's certificate.
func trusting(srv *httptest.Server) *awshttp.BuildableClient {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	})
}
