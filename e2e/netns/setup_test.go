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

// made is what a run created, so the parent test can check it is all gone.
type made struct {
	namespaces []string
	links      []string
	pids       map[int]string
	dir        string
	etcDirs    []string
}

// inLab starts a lab and runs f in a subtest called name with it, and
// then, the subtest's cleanups done, checks that nothing of the lab is
// left: no namespace, link, process, file or socket. f adds the processes
// it starts to m.
func inLab(t *testing.T, name string, f func(t *testing.T, v *vpc.VPC, m *made)) {
	t.Helper()
	etcExisted := exists(vpc.EtcDir)
	sockets := socketFDs(t)
	var m made
	t.Run(name, func(t *testing.T) {
		v := startVPC(t, &m)
		f(t, v, &m)
	})

	// The subtest's cleanups have run: nothing of the lab may be left.
	checkGone(t, m, etcExisted)

	// A socket this process opened in a namespace would keep it alive,
	// nameless, with its links, after `ip netns delete`.
	if n := socketFDs(t); n != sockets {
		t.Errorf("%d sockets open after the lab stopped, %d before", n, sockets)
	}
}

// startVPC starts a lab with the bucket, stopped in the test's cleanup,
// and records in m what it made.
func startVPC(t *testing.T, m *made) *vpc.VPC {
	t.Helper()
	dir := t.TempDir()
	ctx := t.Context()

	// A run killed on timeout skips its cleanups; its namespaces go now.
	if err := vpc.RemoveStale(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := vpc.Start(ctx, vpc.Options{
		Dir:     dir,
		Tag:     strconv.Itoa(os.Getpid()),
		Buckets: []string{bucket},
	})
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Stop(context.Background()); err != nil {
			t.Errorf("stop lab: %v", err)
		}
	})
	*m = made{dir: dir, links: v.Links(), pids: map[int]string{}}
	for _, n := range v.Namespaces() {
		m.namespaces = append(m.namespaces, n.Name)
		m.etcDirs = append(m.etcDirs, filepath.Join(vpc.EtcDir, n.Name))
	}
	for _, p := range v.Procs() {
		m.pids[p.Pid()] = p.Name
	}
	return v
}

// moduleRoot is the module's root directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

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
	bin := filepath.Join(t.TempDir(), "pathagent")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/pathagent")
	cmd.Dir = moduleRoot(t)
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
