package netns

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/config"
	vpc "github.com/pathagent/pathagent/internal/lab/netns"
	"github.com/pathagent/pathagent/internal/lab/pkgtest"
	"github.com/pathagent/pathagent/internal/report"
)

const (
	// What the package installs, and runs here.
	installedBinary = "/usr/bin/pathagent"
	installedConfig = "/etc/pathagent/pathagent.yaml"

	// debVersion is stamped into the packaged binary, so the installed
	// one can be told from any other pathagent.
	debVersion = "0.0.0+netnstest"

	// pkgLockWait bounds the wait for packaging's test, which installs,
	// checks and purges the package in seconds.
	pkgLockWait = 2 * time.Minute
)

// placeholder is the shipped configuration's only active bucket line; no
// bucket can have this name (AWS reserves the amzn-s3-demo- prefix).
var placeholder = regexp.MustCompile(`(?m)^  - amzn-s3-demo-bucket$`)

// TestInstalledPackage builds the .deb as `make package` does, installs
// it, and runs the installed binary with the installed configuration in
// the instance namespace, only the placeholder bucket replaced by the
// lab's: what an administrator does on an instance. The package is purged
// afterwards.
func TestInstalledPackage(t *testing.T) {
	requireTools(t)
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed: not a Debian-based system")
	}
	deb := buildDeb(t)

	// Set once the test has installed the package, and so must have
	// purged it.
	var tried bool
	inLab(t, "installed", func(t *testing.T, v *vpc.VPC, m *made) { installed(t, v, m, deb, &tried) })
	if !tried {
		return
	}
	for _, p := range []string{installedBinary, filepath.Dir(installedConfig), "/usr/share/doc/pathagent"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after purge (err=%v)", p, err)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "pathagent").Output(); bytes.Contains(out, []byte("installed")) {
		t.Errorf("pathagent still known to dpkg: %s", out)
	}
}

func installed(t *testing.T, v *vpc.VPC, m *made, deb string, tried *bool) {
	ctx := t.Context()
	before, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}

	// packaging's TestDebPackage installs it too, maybe at this moment
	// from another test process; from the check below to the purge,
	// neither may run while the other does.
	lockCtx, cancel := context.WithTimeout(ctx, pkgLockWait)
	defer cancel()
	release, err := pkgtest.Acquire(lockCtx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("release %s: %v", pkgtest.Path, err)
		}
	})

	// Never touch a pathagent the machine really uses.
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "pathagent").Output(); bytes.Contains(out, []byte("installed")) {
		t.Skipf("a pathagent package is already installed (%s); this test would purge it", out)
	}
	if _, err := os.Stat(installedBinary); err == nil {
		t.Skipf("%s exists outside the package; this test would overwrite it", installedBinary)
	}

	// Registered before installing, so even a half-done install is
	// purged whatever fails next.
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "-P", "pathagent").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg -P pathagent: %v\n%s", err, out)
		}
	})
	*tried = true
	run(t, "dpkg", "-i", deb)
	if out := run(t, installedBinary, "version"); !strings.Contains(out, debVersion) {
		t.Fatalf("%s version printed %q, want %s: not the package's binary", installedBinary, out, debVersion)
	}

	cfg := labConfig(t)
	requireContained(t, v)
	rep, pid := once(t, v, installedBinary, v.CA.CertPath, "--config", cfg)
	m.pids[pid] = "installed pathagent once"

	if rep.Status != report.OK {
		t.Errorf("status %s, want ok", rep.Status)
	}
	if rep.Identity == nil || rep.Identity.InstanceID != vpc.InstanceID || rep.Identity.IMDSVersion != 2 {
		t.Errorf("identity %+v, want %s over IMDSv2", rep.Identity, vpc.InstanceID)
	}
	if rep.Resolver != vpc.ResolverIP+":53" {
		t.Errorf("resolver %q, want the VPC resolver from resolv.conf", rep.Resolver)
	}
	if len(rep.Buckets) != 1 || rep.Buckets[0].Name != bucket {
		t.Fatalf("buckets %+v, want only %s", rep.Buckets, bucket)
	}
	b := rep.Buckets[0]
	if b.Path.Kind != "gateway_endpoint" || b.Path.Target != vpc.GatewayEndpoint ||
		b.Path.RouteTableID != vpc.RouteTableID {
		t.Errorf("path %s %s %s, want gateway_endpoint %s %s", b.Path.Kind, b.Path.Target,
			b.Path.RouteTableID, vpc.GatewayEndpoint, vpc.RouteTableID)
	}
	var ops []string
	for _, p := range b.Probes {
		ops = append(ops, p.Op)
		if !p.Success || p.Skipped {
			t.Errorf("%s: reason %q (failed_in %s, %s %s), want success", p.Op, p.Reason,
				p.FailedIn, p.ErrorCode, p.Error)
		}
	}
	if want := []string{"list", "put", "get", "delete"}; !slices.Equal(ops, want) {
		t.Errorf("probes %v, want %v", ops, want)
	}

	after, err := v.S3.ListObjects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("bucket contents changed:\nbefore %v\nafter  %v", before, after)
	}
}

// labConfig copies the installed configuration with the placeholder bucket
// replaced by the lab's, and checks that nothing else differs: not a line
// of the text, not a setting as the agent reads it.
func labConfig(t *testing.T) string {
	t.Helper()
	shipped, err := os.ReadFile(installedConfig)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(placeholder.FindAllIndex(shipped, -1)); n != 1 {
		t.Fatalf("%s has %d placeholder bucket lines, want 1", installedConfig, n)
	}
	edited := placeholder.ReplaceAll(shipped, []byte("  - "+bucket))

	oldLines, newLines := strings.Split(string(shipped), "\n"), strings.Split(string(edited), "\n")
	changed := 0
	for i := range oldLines {
		if oldLines[i] != newLines[i] {
			changed++
		}
	}
	if len(oldLines) != len(newLines) || changed != 1 {
		t.Fatalf("the copy differs in %d lines, want only the bucket's", changed)
	}

	path := filepath.Join(t.TempDir(), "pathagent.yaml")
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, err := config.Load(installedConfig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []config.Bucket{{Name: bucket}}; !slices.Equal(got.Buckets, want) {
		t.Errorf("the copy's buckets read as %+v, want %+v", got.Buckets, want)
	}
	orig.Buckets, got.Buckets = nil, nil
	if !reflect.DeepEqual(orig, got) {
		t.Errorf("the copy's settings read as %+v, the installed file's as %+v", got, orig)
	}
	return path
}

// buildDeb builds cmd/pathagent and the .deb from packaging/nfpm.yaml as
// `make package` does, and returns the .deb's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "pathagent")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath",
		"-ldflags", "-X main.version="+debVersion, "-o", bin, "./cmd/pathagent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pathagent: %v\n%s", err, out)
	}

	return pkgtest.BuildDeb(t, root, bin, debVersion)
}

// run runs a command that must succeed and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
