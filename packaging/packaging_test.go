// Package packaging holds no code: its tests check the files that install
// pathagent as a systemd service, and the .deb built from them.
package packaging

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/lab/pkgtest"
	"github.com/pathagent/pathagent/internal/probes"
)

const (
	unitFile   = "systemd/pathagent.service"
	webDropIn  = "systemd/web-config.conf"
	configFile = "pathagent.yaml"
	policyFile = "iam-policy.json"
	webFile    = "web.yml"

	// installedBinary is the path the unit starts and the package installs.
	installedBinary = "/usr/bin/pathagent"

	// testVersion is stamped into the binaries these tests build, so the
	// installed binary can be told from any other pathagent.
	testVersion = "0.0.0+packagingtest"

	// maxExposure is the highest `systemd-analyze security` score
	// accepted. What is left is what the agent needs: the host's network,
	// IPv4/IPv6 and AF_UNIX sockets, no IP allow list (S3 may be anywhere).
	maxExposure = 2.0

	// pkgLockWait bounds the wait for another test's install, check and
	// purge of the package, which take seconds.
	pkgLockWait = 2 * time.Minute
)

// binDir holds the binary the tests build, once, for all of them.
var (
	binDir   string
	buildErr error
	buildOne sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// pathagentBinary builds ./cmd/pathagent as `make package` does and
// returns its path.
func pathagentBinary(t *testing.T) string {
	t.Helper()
	buildOne.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "pathagent-packaging-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-X main.version="+testVersion,
			"-o", filepath.Join(binDir, "pathagent"),
			"./cmd/pathagent")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pathagent: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "pathagent")
}

// systemdAnalyze runs systemd-analyze and returns everything it printed.
// A missing systemd-analyze skips the test: there is nothing to check with.
func systemdAnalyze(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stageUnit writes the unit, and any drop-ins, into a fresh directory
// with ExecStart pointing at a freshly built binary, and returns the
// unit's path and the environment that makes systemd-analyze find the
// drop-ins.
//
// The copy is needed because `systemd-analyze verify` checks that
// ExecStart's binary exists and is executable, and /usr/bin/pathagent is
// only there once the package is installed (TestDebPackage verifies that
// installed unit as it is).
func stageUnit(t *testing.T, dropIns ...string) (string, []string) {
	t.Helper()
	unit := readFile(t, unitFile)
	if !strings.Contains(unit, "ExecStart="+installedBinary+" ") {
		t.Fatalf("%s: ExecStart does not start %s", unitFile, installedBinary)
	}
	if _, err := os.Stat("/bin/kill"); err != nil {
		t.Fatalf("ExecReload needs /bin/kill (Debian package procps): %v", err)
	}
	unit = strings.ReplaceAll(unit, installedBinary, pathagentBinary(t))

	dir := t.TempDir()
	path := filepath.Join(dir, "pathagent.service")
	writeFile(t, path, unit)
	for _, d := range dropIns {
		writeFile(t, filepath.Join(path+".d", filepath.Base(d)), readFile(t, d))
	}

	// The trailing colon appends the built-in search path, where
	// network-online.target and multi-user.target live.
	return path, []string{"SYSTEMD_UNIT_PATH=" + dir + ":"}
}

func TestUnitVerify(t *testing.T) {
	tests := []struct {
		name    string
		dropIns []string
	}{
		{name: "as shipped"},
		{name: "with the web drop-in", dropIns: []string{webDropIn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, env := stageUnit(t, tt.dropIns...)

			// verify reports unknown keys and bad values as warnings and
			// still exits 0: any output at all is a failure.
			out, err := systemdAnalyze(t, env, "verify", unit)
			if err != nil || out != "" {
				t.Errorf("systemd-analyze verify: err=%v, output:\n%s", err, out)
			}
		})
	}
}

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

func TestUnitSecurity(t *testing.T) {
	unit, env := stageUnit(t)

	out, err := systemdAnalyze(t, env, "security", "--offline=true", unit)
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
	t.Logf("exposure level %.1f", score)
}

// exampleLine matches a commented-out setting in pathagent.yaml: "#"
// directly followed by the line as it reads when enabled: a top-level key
// right after the "#", or an indented key or list item. Explanations start
// with "# " and one space, or are indented text that is not "key:".
var exampleLine = regexp.MustCompile(`^#([a-z][a-z0-9_]*:(\s|$)|` +
	`\s{2,}(- )?[a-z][a-z0-9_]*:(\s|$)|\s{2,}- [a-z0-9][a-z0-9.-]*$)`)

// enableExamples removes the "#" from every commented-out setting.
func enableExamples(s string) (string, int) {
	lines := strings.Split(s, "\n")
	n := 0
	for i, l := range lines {
		if exampleLine.MatchString(l) {
			lines[i] = l[1:]
			n++
		}
	}
	return strings.Join(lines, "\n"), n
}

func TestDefaultConfig(t *testing.T) {
	t.Run("as shipped", func(t *testing.T) {
		cfg, err := config.Load(configFile)
		if err != nil {
			t.Fatal(err)
		}
		want := []config.Bucket{{Name: "amzn-s3-demo-bucket"}}
		if !slices.Equal(cfg.Buckets, want) {
			t.Errorf("buckets = %+v, want the placeholder %+v", cfg.Buckets, want)
		}
		// Everything else is left to the code's defaults, so that a
		// default changed in a release is not pinned by this
		// conffile, which upgrades keep.
		rest := *cfg
		rest.Buckets = nil
		if !reflect.DeepEqual(rest, config.Config{}) {
			t.Errorf("settings besides buckets: %+v, want none", rest)
		}
	})

	// Every commented-out setting, enabled, must parse, and the values
	// shown as defaults must be the code's defaults.
	t.Run("examples enabled", func(t *testing.T) {
		text, n := enableExamples(readFile(t, configFile))
		if n < 10 {
			t.Fatalf("only %d commented-out settings found", n)
		}
		cfg, err := config.Parse(configFile, []byte(text))
		if err != nil {
			t.Fatalf("%v\nenabled text:\n%s", err, text)
		}

		got := []any{cfg.Interval, cfg.MaxConcurrent, cfg.TopologyRefresh,
			cfg.Timeout, cfg.ProbePrefix, cfg.PathStyle, cfg.AllowIMDSv1}
		want := []any{config.DefaultInterval, config.DefaultMaxConcurrent,
			config.DefaultTopologyRefresh, probes.DefaultTimeout,
			probes.DefaultPrefix, false, false}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("shown default %v, the code's is %v", got[i], want[i])
			}
		}
		if len(cfg.Buckets) != 2 || cfg.Buckets[1].ExpectPath == "" {
			t.Errorf("buckets = %+v, want the placeholder and an example with expect_path",
				cfg.Buckets)
		}
	})

	t.Run("names every path kind", func(t *testing.T) {
		text := readFile(t, configFile)
		for _, k := range config.PathKinds {
			if !regexp.MustCompile(`\b` + k + `\b`).MatchString(text) {
				t.Errorf("expect_path value %q is not listed", k)
			}
		}
	})
}

// stringOrList is an IAM policy field that may be one string or a list.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

type policy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    stringOrList
		Resource  stringOrList
		Condition map[string]map[string]stringOrList
	}
}

func TestIAMPolicy(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(readFile(t, policyFile)))
	dec.DisallowUnknownFields()
	var p policy
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", policyFile, err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("Version = %q, want 2012-10-17 (older versions have no policy variables)",
			p.Version)
	}

	// Resource patterns follow the agent's own default prefix.
	prefix := probes.DefaultPrefix + "*"
	type grant struct {
		resources string
		condition string
	}
	want := map[string]grant{
		"ec2:DescribeRouteTables":         {resources: "*"},
		"ec2:DescribeVpcEndpoints":        {resources: "*"},
		"ec2:DescribeManagedPrefixLists":  {resources: "*"},
		"ec2:GetManagedPrefixListEntries": {resources: "*"},
		"s3:ListBucket": {
			resources: "arn:aws:s3:::BUCKET",
			condition: "StringLike s3:prefix=" + prefix,
		},
		"s3:PutObject":    {resources: "arn:aws:s3:::BUCKET/" + prefix},
		"s3:GetObject":    {resources: "arn:aws:s3:::BUCKET/" + prefix},
		"s3:DeleteObject": {resources: "arn:aws:s3:::BUCKET/" + prefix},
	}

	got := map[string]grant{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: Effect %q, want Allow", s.Sid, s.Effect)
		}
		var cond []string
		for op, keys := range s.Condition {
			for k, v := range keys {
				cond = append(cond, op+" "+k+"="+strings.Join(v, ","))
			}
		}
		slices.Sort(cond)
		g := grant{
			resources: strings.Join(s.Resource, ","),
			condition: strings.Join(cond, ";"),
		}
		for _, a := range s.Action {
			if _, dup := got[a]; dup {
				t.Errorf("action %s granted twice", a)
			}
			got[a] = g
		}
	}

	for a, g := range got {
		w, ok := want[a]
		switch {
		case !ok:
			t.Errorf("unexpected action %s", a)
		case g != w:
			t.Errorf("%s: got %+v, want %+v", a, g, w)
		}
	}
	for a := range want {
		if _, ok := got[a]; !ok {
			t.Errorf("missing action %s", a)
		}
	}
}

// TestWebConfig checks web.yml as the exporter toolkit reads it: refused
// while the password hash is the placeholder, accepted with a real hash
// and the TLS files beside it (its paths are relative to its directory,
// which is what lets the drop-in pass all three as systemd credentials).
func TestWebConfig(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	text := readFile(t, webFile)
	path := filepath.Join(dir, "web.yml")

	writeFile(t, path, text)
	if err := web.Validate(path); err == nil {
		t.Error("web.yml with the placeholder hash accepted; want it refused")
	}

	// bcrypt of "packaging-test" at the lowest cost; only its form is
	// checked.
	const hash = "$2b$04$r0ySam0MWemW38zn5rDMVe25TUBZIZqOkjWTSb4jW3hzWEsX94jxO"
	if !strings.Contains(text, "REPLACE-WITH-BCRYPT-HASH") {
		t.Fatal("web.yml: placeholder REPLACE-WITH-BCRYPT-HASH not found")
	}
	writeFile(t, path, strings.ReplaceAll(text, "REPLACE-WITH-BCRYPT-HASH", hash))
	if err := web.Validate(path); err != nil {
		t.Errorf("web.yml with a real hash: %v", err)
	}
}

// installedFiles maps what the .deb installs to its source here.
var installedFiles = map[string]string{
	"/lib/systemd/system/pathagent.service":    unitFile,
	"/etc/pathagent/pathagent.yaml":            configFile,
	"/usr/share/doc/pathagent/iam-policy.json": policyFile,
	"/usr/share/doc/pathagent/web.yml":         webFile,
	"/usr/share/doc/pathagent/web-config.conf": webDropIn,
	"/usr/share/doc/pathagent/README.md":       "README.md",
}

// TestDebPackage builds the .deb, installs it on this machine, checks it
// and purges it. It needs root and dpkg; CI runs as root.
func TestDebPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed: not a Debian-based system")
	}

	// e2e/netns installs the package too; from the check below to the
	// purge, neither may run while the other does.
	ctx, cancel := context.WithTimeout(t.Context(), pkgLockWait)
	defer cancel()
	release, err := pkgtest.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("release %s: %v", pkgtest.Path, err)
		}
	})

	// Never touch a pathagent the machine really uses.
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "pathagent").Output(); strings.Contains(string(out), "installed") {
		t.Skipf("a pathagent package is already installed (%s); this test would purge it", out)
	}
	if _, err := os.Stat(installedBinary); err == nil {
		t.Skipf("%s exists outside the package; this test would overwrite it", installedBinary)
	}

	deb := pkgtest.BuildDeb(t, "..", pathagentBinary(t), testVersion)

	// Registered before installing, so even a half-done install is
	// purged whatever fails next.
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "-P", "pathagent").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg -P pathagent: %v\n%s", err, out)
		}
	})
	run(t, "dpkg", "-i", deb)

	for dst, src := range installedFiles {
		if got, want := readFile(t, dst), readFile(t, src); got != want {
			t.Errorf("%s differs from %s", dst, src)
		}
	}
	if conf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "pathagent"); !strings.Contains(conf, "/etc/pathagent/pathagent.yaml") {
		t.Errorf("pathagent.yaml is not a conffile; dpkg lists:\n%s", conf)
	}

	if out := run(t, installedBinary, "version"); !strings.Contains(out, testVersion) {
		t.Errorf("%s version printed %q, want it to contain %s", installedBinary, out, testVersion)
	}

	// The unit as installed, with the real binary in place.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := systemdAnalyze(t, nil, "verify", "/lib/systemd/system/pathagent.service")
		if err != nil || out != "" {
			t.Errorf("systemd-analyze verify on the installed unit: err=%v, output:\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed: installed unit not verified")
	}

	// An upgrade keeps the administrator's configuration.
	const edited = "buckets: [amzn-s3-demo-edited]\n"
	writeFile(t, "/etc/pathagent/pathagent.yaml", edited)
	run(t, "dpkg", "-i", deb)
	if got := readFile(t, "/etc/pathagent/pathagent.yaml"); got != edited {
		t.Errorf("reinstall replaced the edited configuration with:\n%s", got)
	}

	// Enabled (systemctl edits links without a running systemd), then
	// purged: the removal script must take the enable link with it.
	wants := "/etc/systemd/system/multi-user.target.wants/pathagent.service"
	if _, err := exec.LookPath("systemctl"); err == nil {
		run(t, "systemctl", "--no-reload", "enable", "pathagent.service")
		if _, err := os.Lstat(wants); err != nil {
			t.Errorf("enable made no link: %v", err)
		}
	}

	run(t, "dpkg", "-P", "pathagent")
	gone := []string{installedBinary, "/etc/pathagent", "/usr/share/doc/pathagent", wants}
	for dst := range installedFiles {
		gone = append(gone, dst)
	}
	for _, p := range gone {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after purge (err=%v)", p, err)
		}
	}
}

// run runs a command that must succeed and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err,
			stdout.String(), stderr.String())
	}
	return stdout.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSelfSigned writes a throwaway certificate and key in PEM.
func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pathagent test"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
}
