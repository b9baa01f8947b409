package netns

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	vpc "github.com/pathagent/pathagent/internal/lab/netns"
)

// defaultBundle is Debian's system CA bundle, what AWS_CA_BUNDLE names on
// this machine and in CI.
const defaultBundle = "/etc/ssl/certs/ca-certificates.crt"

// requireTools skips the test where namespaces cannot be made, and fails
// it where a tool `make test` installs is missing.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not found on PATH: cannot build the namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft not found on PATH: run `make test`, which installs Debian's nftables package")
	}
}

// buildAgent builds cmd/pathagent and returns the binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pathagent")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/pathagent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pathagent: %v\n%s", err, out)
	}
	return bin
}

// systemBundle is the AWS_CA_BUNDLE this machine exports, or Debian's
// bundle when it exports none.
func systemBundle() string {
	if b := os.Getenv("AWS_CA_BUNDLE"); b != "" {
		return b
	}
	return defaultBundle
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// remoteIP is the client address in a line of versitygw's access log:
// "OWNER BUCKET [TIME] REMOTE REQUESTER ...", where TIME has a space.
func remoteIP(line string) string {
	_, rest, ok := strings.Cut(line, "] ")
	if !ok {
		return ""
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return ""
	}
	if _, err := netip.ParseAddr(f[0]); err != nil {
		return ""
	}
	return f[0]
}

// checkGone checks that a run left no namespace, link, process or file.
func checkGone(t *testing.T, m made, etcExisted bool) {
	t.Helper()
	if len(m.namespaces) == 0 {
		t.Fatal("the run recorded no namespace: nothing to check")
	}

	names, err := vpc.Names(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.namespaces {
		if slices.Contains(names, n) {
			t.Errorf("namespace %s left behind", n)
		}
		if exists(filepath.Join("/run/netns", n)) {
			t.Errorf("/run/netns/%s left behind", n)
		}
	}

	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.links {
		if bytes.Contains(out, []byte(" "+l+"@")) || bytes.Contains(out, []byte(" "+l+":")) {
			t.Errorf("link %s left in the machine's namespace", l)
		}
	}

	// A reaped process has no /proc entry, not even a zombie's.
	for pid, name := range m.pids {
		if exists("/proc/" + strconv.Itoa(pid)) {
			state, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Errorf("%s (pid %d) still there: %s", name, pid, strings.TrimSpace(string(state)))
		}
	}

	for _, d := range append([]string{m.dir}, m.etcDirs...) {
		if exists(d) {
			t.Errorf("%s left behind", d)
		}
	}
	if !etcExisted && exists(vpc.EtcDir) {
		t.Errorf("%s left behind", vpc.EtcDir)
	}
	t.Logf("gone: namespaces %v, links %v, %d processes, %s and %v",
		m.namespaces, m.links, len(m.pids), m.dir, m.etcDirs)
}

// socketFDs counts this process's open sockets.
func socketFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}
