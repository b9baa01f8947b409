package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logTail is how much of a child's log a failed test shows: enough for
// the last few probe cycles at debug level.
const logTail = 150

// httpTimeout bounds each request to the agent or Prometheus, both on
// loopback and answering in milliseconds when well.
const httpTimeout = 5 * time.Second

// client talks to loopback only; proxies from the environment must not
// get in the way.
var client = &http.Client{
	Timeout:   httpTimeout,
	Transport: &http.Transport{Proxy: nil},
}

// moduleRoot returns the module's root directory, the parent of this
// package's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(data, []byte("module github.com/pathagent/pathagent\n")) {
		t.Fatalf("%s is not pathagent's module root (go.mod: %v)", root, err)
	}
	return root
}

// buildAgent builds cmd/pathagent into dir and returns the binary.
func buildAgent(t *testing.T, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pathagent")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/pathagent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pathagent: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port nobody listens on now.
// Another process could take it before the child does; the child then
// fails to listen and says so in its log.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// child is a process the test started and ends in its cleanup.
type child struct {
	name string
	log  string

	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, once done is closed
}

// startChild starts a process with exactly env, its output going to
// dir/NAME.log. The test's cleanup kills and waits for it, and shows the
// end of its log if the test failed.
func startChild(t *testing.T, name, dir string, env []string, path string, args ...string) *child {
	t.Helper()
	c := &child{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logFile, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()

	t.Cleanup(func() {
		select {
		case <-c.done:
			t.Errorf("%s exited before the test ended: %v", name, c.err)
		default:
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("kill %s: %v", name, err)
			}
			<-c.done
		}
		if t.Failed() {
			t.Logf("last %d lines of %s's log:\n%s", logTail, name, tail(c.log, logTail))
		}
	})
	return c
}

// alive fails the test when the process has exited.
func (c *child) alive(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		t.Fatalf("%s exited: %v\n%s", c.name, c.err, tail(c.log, logTail))
	default:
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// get fetches a URL and returns its body; a status other than 200 is an
// error.
func get(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// waitHTTP waits until url answers 200 while c runs.
func waitHTTP(t *testing.T, c *child, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		c.alive(t)
		if _, err = get(url); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %s within %s: %v", c.name, url, within, err)
}
