package imdsmock

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

const scenarioPath = "../../../lab/scenarios/gateway-endpoint.yaml"

func loadScenario(t *testing.T) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(scenarioPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startMock starts the mock for s and stops it when the test ends. A
// missing binary fails the test: the lab is part of the build.
func startMock(t *testing.T, s *scenario.Scenario) *Mock {
	t.Helper()
	m, err := Start(t.Context(), t.TempDir(), s)
	if err != nil {
		t.Fatalf("start mock: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mock: %v", err)
		}
	})
	return m
}

// get fetches path from the mock, with a token unless tok is empty.
func get(t *testing.T, m *Mock, path, tok string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-aws-ec2-metadata-token", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func token(t *testing.T, m *Mock) string {
	t.Helper()
	tok, err := m.call(t.Context(), http.DefaultClient, http.MethodPut,
		"/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "60")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMockAnswersAsScenario(t *testing.T) {
	s := loadScenario(t)
	m := startMock(t, s)
	tok := token(t, m)

	mac := "/latest/meta-data/network/interfaces/macs/" + s.Instance.MAC + "/"
	tests := []struct {
		name string
		path string
		want string
	}{
		{"instance id", "/latest/meta-data/instance-id", s.Instance.ID},
		{"mac", "/latest/meta-data/mac", s.Instance.MAC},
		{"zone", "/latest/meta-data/placement/availability-zone", s.Instance.AvailabilityZone},
		{"region", "/latest/meta-data/placement/region", s.Region},
		{"local ipv4", "/latest/meta-data/local-ipv4", s.Instance.PrivateIP},
		{"vpc id", mac + "vpc-id", s.Instance.VPCID},
		{"subnet id", mac + "subnet-id", s.Instance.SubnetID},
		{"vpc cidrs", mac + "vpc-ipv4-cidr-blocks", s.Instance.VPCCIDR},
		{"subnet cidr", mac + "subnet-ipv4-cidr-block", s.Instance.SubnetCIDR},
		{"local ipv4s", mac + "local-ipv4s", s.Instance.PrivateIP},
		{"owner", mac + "owner-id", s.AccountID},

		// The scenario has no public address and no IPv6: the mock
		// answers an empty 200 where EC2 would answer 404.
		{"public ipv4", "/latest/meta-data/public-ipv4", ""},
		{"public ipv4s", mac + "public-ipv4s", ""},
		{"ipv6s", mac + "ipv6s", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := get(t, m, tt.path, tok)
			if code != http.StatusOK || got != tt.want {
				t.Errorf("GET %s = %d %q, want 200 %q", tt.path, code, got, tt.want)
			}
		})
	}

	code, body := get(t, m, "/latest/dynamic/instance-identity/document", tok)
	if code != http.StatusOK {
		t.Fatalf("identity document: status %d", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("identity document: %v", err)
	}
	wantDoc := map[string]string{
		"region":           s.Region,
		"accountId":        s.AccountID,
		"instanceId":       s.Instance.ID,
		"availabilityZone": s.Instance.AvailabilityZone,
		"privateIp":        s.Instance.PrivateIP,
	}
	for k, want := range wantDoc {
		if doc[k] != want {
			t.Errorf("identity document %s = %v, want %q", k, doc[k], want)
		}
	}
}

func TestMockRequiresToken(t *testing.T) {
	m := startMock(t, loadScenario(t))

	// -I: a tokenless (IMDSv1) request is refused.
	code, _ := get(t, m, "/latest/meta-data/instance-id", "")
	if code != http.StatusUnauthorized {
		t.Errorf("GET without token: status %d, want 401", code)
	}
}

func TestStopReapsChild(t *testing.T) {
	m, err := Start(t.Context(), t.TempDir(), loadScenario(t))
	if err != nil {
		t.Fatalf("start mock: %v", err)
	}
	pid := m.cmd.Process.Pid

	if err := m.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// Once reaped, the pid has no /proc entry (not even a zombie's).
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("pid %d still in /proc after Stop (err %v)", pid, err)
	}
	if _, err := http.Get(m.URL() + "/latest/api/token"); err == nil {
		t.Errorf("mock still answers after Stop")
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	s := loadScenario(t)
	dir := t.TempDir()
	bin, err := FindBinary(BinaryName)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, configFile)
	cfg, err := config(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	// Hold a port and hand it to a child directly: it must fail to bind
	// and be reported as errExited, the condition Start retries on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	logf, err := os.Create(filepath.Join(dir, logFile))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	_, err = startOn(t.Context(), bin, dir, cfgPath, logf, s.Instance.ID, port)
	if !errors.Is(err, errExited) {
		t.Errorf("start on a taken port: got %v, want errExited", err)
	}
}

func TestFindBinary(t *testing.T) {
	tests := []struct {
		name    string
		bin     string
		wantErr error
	}{
		{"mock is installed", BinaryName, nil},
		{"unknown tool", "pathagent-no-such-tool", ErrBinaryMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FindBinary(tt.bin)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FindBinary(%q) = %q, %v; want error %v", tt.bin, p, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "make tools") {
				t.Errorf("error %q does not say to run make tools", err)
			}
		})
	}
}

func TestFindBinaryOffPath(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}

	// Only go itself stays on PATH: the mock must be found where
	// `go install` put it.
	t.Setenv("PATH", filepath.Dir(goBin))
	p, err := FindBinary(BinaryName)
	if err != nil {
		t.Fatalf("FindBinary off PATH: %v", err)
	}
	if filepath.Base(filepath.Dir(p)) != "bin" {
		t.Errorf("FindBinary = %q, want a file in a bin directory", p)
	}
}

func TestConfigWithoutPublicIP(t *testing.T) {
	s := loadScenario(t)
	data, err := config(s)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Metadata struct {
			Values map[string]string `json:"values"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		key  string
		want string
	}{
		{"public-ipv4", ""},
		{"mac-public-ipv4s", ""},
		{"mac-ipv4-associations", ""},
		{"local-hostname", "ip-127-16-1-10.ec2.internal"},
	}
	for _, tt := range tests {
		if got := file.Metadata.Values[tt.key]; got != tt.want {
			t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
		}
	}
}
