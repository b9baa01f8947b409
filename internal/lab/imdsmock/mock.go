// Package imdsmock runs AWS's amazon-ec2-metadata-mock as a child process
// that answers, IMDSv2 only, as the instance of a lab scenario.
package imdsmock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// BinaryName is the mock's executable, installed by `make tools`.
const BinaryName = "ec2-metadata-mock"

const (
	// startTimeout bounds the wait for the first answer. The mock is up
	// in a fraction of a second; this leaves room for a loaded CI host.
	startTimeout = 15 * time.Second

	// pollInterval spaces the readiness probes: short enough to add
	// little to each test, long enough not to spin.
	pollInterval = 20 * time.Millisecond

	// probeTimeout bounds one readiness request on loopback.
	probeTimeout = time.Second

	// portAttempts is how many free ports Start tries. Another process
	// can take the port between our probe and the child's bind; the
	// child then exits and a fresh port almost always works.
	portAttempts = 5

	// probeTokenTTL is the TTL, in seconds, of the token the readiness
	// probe asks for; it is used once, right away.
	probeTokenTTL = "60"
)

const (
	configFile = "aemm-config.json"
	logFile    = "ec2-metadata-mock.log"
)

// errExited means the child ended before it answered, typically because
// the port was taken after all.
var errExited = errors.New("mock exited before answering")

// Mock is a running ec2-metadata-mock. Stop it when done.
type Mock struct {
	url     string
	logPath string
	cmd     *exec.Cmd
	log     *os.File

	// exited is closed once cmd.Wait has returned; waitErr is its result.
	exited  chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start writes a config for s into dir, starts the mock on a free port of
// 127.0.0.1 in IMDSv2-only mode, and returns once it answers as the
// scenario's instance. The child runs with HOME=dir and writes its output
// to a log file in dir, so dir should belong to this mock alone. ctx
// bounds the start only; the mock runs until Stop.
func Start(ctx context.Context, dir string, s *scenario.Scenario) (*Mock, error) {
	bin, err := FindBinary(BinaryName)
	if err != nil {
		return nil, err
	}

	cfg, err := config(s)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, configFile)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("write mock config: %w", err)
	}

	logPath := filepath.Join(dir, logFile)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create mock log: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	var errs []error
	for range portAttempts {
		m, err := start(ctx, bin, dir, cfgPath, logf, s.Instance.ID)
		if err == nil {
			m.logPath = logPath
			return m, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errExited) {
			break
		}
	}
	logf.Close()
	return nil, fmt.Errorf("start %s (log %s): %w", BinaryName, logPath, errors.Join(errs...))
}

// start runs one child on a fresh port and waits for it to answer as the
// instance wantID.
func start(
	ctx context.Context,
	bin, dir, cfgPath string,
	logf *os.File,
	wantID string,
) (*Mock, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startOn(ctx, bin, dir, cfgPath, logf, wantID, port)
}

// startOn runs one child on port and waits for it to answer as wantID.
func startOn(
	ctx context.Context,
	bin, dir, cfgPath string,
	logf *os.File,
	wantID string,
	port int,
) (*Mock, error) {
	cmd := exec.Command(bin,
		"-n", "127.0.0.1",
		"-p", strconv.Itoa(port),
		"-c", cfgPath,
		"-I",
	)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf

	// A bare environment: the mock reads AEMM_* variables and a config
	// file under HOME, and none of the caller's should leak in.
	cmd.Env = []string{"HOME=" + dir}

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	m := &Mock{
		url:    "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:    cmd,
		log:    logf,
		exited: make(chan struct{}),
	}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()

	if err := m.waitReady(ctx, wantID); err != nil {
		m.kill()
		return nil, err
	}
	return m, nil
}

// waitReady polls until the mock reports wantID as its instance id. Asking
// for the id, not just any answer, makes sure the port is ours.
func (m *Mock) waitReady(ctx context.Context, wantID string) error {
	client := &http.Client{
		Timeout: probeTimeout,
		// Never through a proxy: the mock is on loopback.
		Transport: &http.Transport{Proxy: nil},
	}
	defer client.CloseIdleConnections()

	// A probe stuck on a port someone else holds ends when our child
	// exits, so Start moves on to the next port at once.
	probeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.exited:
			cancel()
		case <-probeCtx.Done():
		}
	}()

	tick := time.NewTicker(pollInterval)
	defer tick.Stop()

	var last error
	for {
		id, err := m.instanceID(probeCtx, client)
		switch {
		case err != nil:
			last = err
		case id != wantID:
			last = fmt.Errorf("instance id is %q, want %q", id, wantID)
		default:
			return nil
		}

		select {
		case <-m.exited:
			return fmt.Errorf("%s on %s: %w: %v", BinaryName, m.url, errExited, m.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("wait for %s on %s: %w (last: %v)", BinaryName, m.url, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// instanceID asks the mock for the instance id the IMDSv2 way.
func (m *Mock) instanceID(ctx context.Context, client *http.Client) (string, error) {
	tok, err := m.call(ctx, client, http.MethodPut, "/latest/api/token",
		"X-aws-ec2-metadata-token-ttl-seconds", probeTokenTTL)
	if err != nil {
		return "", err
	}
	return m.call(ctx, client, http.MethodGet, "/latest/meta-data/instance-id",
		"X-aws-ec2-metadata-token", tok)
}

func (m *Mock) call(
	ctx context.Context,
	client *http.Client,
	method, path, header, value string,
) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, m.url+path, nil)
	if err != nil {
		return "", fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set(header, value)

	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: status %s", method, path, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// URL is the mock's base URL, for example http://127.0.0.1:40123, the value
// to give AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (m *Mock) URL() string { return m.url }

// LogPath is the file the mock's output goes to.
func (m *Mock) LogPath() string { return m.logPath }

// Stop kills the mock and waits for it, so it leaves no zombie behind. It
// reports an error if the mock had already exited on its own. Calling it
// again returns the first result.
func (m *Mock) Stop() error {
	m.stopOnce.Do(func() {
		select {
		case <-m.exited:
			m.stopErr = fmt.Errorf("%s exited before Stop (log %s): %v",
				BinaryName, m.logPath, m.waitErr)
		default:
			m.kill()
		}
		if err := m.log.Close(); err != nil && m.stopErr == nil {
			m.stopErr = fmt.Errorf("close mock log: %w", err)
		}
	})
	return m.stopErr
}

// kill ends the child and waits for the Wait goroutine to reap it. Kill
// fails only when the process is already gone, which is what we want.
func (m *Mock) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Start
// retries when it is not free anymore by the time the child binds it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
