package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/audit"
	"github.com/pathagent/pathagent/internal/lab/faults"
	"github.com/pathagent/pathagent/internal/lab/labtest"
)

// childEnv, when set, makes this test binary run `pathagent run` instead
// of the tests: the kill test's child.
const childEnv = "PATHAGENT_TEST_RUN_CHILD"

// TestRunChild is `pathagent run` in a child process of
// TestKilledMidPutLeavesOneObject; it does nothing in a normal test run.
func TestRunChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only runs as the kill test's child")
	}
	os.Exit(run([]string{"run", "--web.listen-address=127.0.0.1:0"}, os.Stdout, os.Stderr))
}

// An agent killed (SIGKILL, nothing runs after it) while its put is in
// flight leaves at most one probe object per bucket, and never touches
// anything else; a later start removes the leftover once it is old enough
// that no live probe can own it, and leaves the bucket as it found it.
func TestKilledMidPutLeavesOneObject(t *testing.T) {
	s := labtest.Scenario(t, "gateway-endpoint")
	l := labtest.Start(t, s)
	ctx := context.Background()

	// S3 writes the object, then the answer is held: the agent is
	// killed while it waits.
	front := s.S3[0].Fronts[0].Address
	proxy, err := faults.StartS3Proxy(net.JoinHostPort(front, "0"),
		net.JoinHostPort(front, strconv.Itoa(l.S3.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Set(faults.S3Put, faults.S3Fault{Hold: true})

	config := filepath.Join(t.TempDir(), "pathagent.yaml")
	err = os.WriteFile(config, fmt.Appendf(nil,
		"buckets: [lab-data]\nresolver: %q\ns3_endpoint: \"http://s3.{region}.amazonaws.com:%d\"\n"+
			"path_style: true\ninterval: 10s\ntimeout: 5s\n",
		l.DNS.Addr(), proxy.Port()), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	before, err := audit.Snapshot(ctx, l)
	if err != nil {
		t.Fatal(err)
	}

	child := startChild(t, l, config)
	select {
	case key := <-proxy.Held():
		t.Logf("put of %s written and held; killing the agent", key)
	case <-time.After(30 * time.Second):
		t.Fatal("no put reached S3 within 30s")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	after, err := audit.Snapshot(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if ch := audit.UserChanges(before, after); len(ch) > 0 {
		t.Errorf("user objects changed: %v", ch)
	}
	left := after.ProbeObjects()
	if len(left) != 1 {
		t.Fatalf("probe objects after the kill: %v, want exactly the one being written", left)
	}

	// The next start sweeps leftovers older than five minutes: age the
	// object past that rather than wait.
	if err := audit.Age(l, left[0], 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	proxy.Clear()
	proxy.Release()
	child = startChild(t, l, config)
	gone := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		objs, err := l.S3.ListObjects(ctx, "lab-data")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := objs[left[0][len("lab-data/"):]]; !ok {
			gone = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("agent after SIGTERM: %v", err)
	}
	if !gone {
		t.Fatalf("leftover %s still there 30s after the restart", left[0])
	}

	final, err := audit.Snapshot(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if ch := audit.UserChanges(before, final); len(ch) > 0 {
		t.Errorf("user objects changed: %v", ch)
	}
	if p := final.ProbeObjects(); len(p) > 0 {
		t.Errorf("probe objects left after a clean stop: %v", p)
	}
}

// startChild runs `pathagent run` with config in the lab's environment.
func startChild(t *testing.T, l *lab.Lab, config string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunChild$")
	cmd.Env = append(lab.CleanEnv(os.Environ()), l.Env()...)
	cmd.Env = append(cmd.Env, childEnv+"=1", "PATHAGENT_CONFIG="+config)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed and reaped whatever happened; a no-op once Wait ran.
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}
