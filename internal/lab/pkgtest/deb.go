package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pathagent/pathagent/internal/lab/imdsmock"
)

// BuildDeb packages bin with packaging/nfpm.yaml under root, as
// `make package` does, into a temporary directory, and returns the .deb's
// path. nfpm missing fails the test with the command that installs it.
func BuildDeb(t testing.TB, root, bin, version string) string {
	t.Helper()
	nfpm, err := imdsmock.FindBinary("nfpm")
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()

	cmd := exec.Command(nfpm, "package", "-f", "packaging/nfpm.yaml",
		"--packager", "deb", "--target", target)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"VERSION="+version,
		"GOARCH="+runtime.GOARCH,
		"PATHAGENT_BINARY="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm package: %v\n%s", err, out)
	}

	debs, _ := filepath.Glob(filepath.Join(target, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("nfpm made %v, want one .deb", debs)
	}
	return debs[0]
}
