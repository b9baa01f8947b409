package s3lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrNoVersitygw means the versitygw binary was not found.
var ErrNoVersitygw = errors.New(
	"versitygw not found on PATH, in GOBIN or in GOPATH/bin: run `make tools`")

const (
	// readyTimeout bounds the wait for a fresh versitygw to answer; it
	// starts in well under a second, so this only catches a hung one.
	readyTimeout = 10 * time.Second

	// readyPoll is short because the first answer usually comes within
	// a few tens of milliseconds.
	readyPoll = 20 * time.Millisecond

	// stopGrace lets versitygw finish in-flight writes after SIGTERM
	// before it is killed.
	stopGrace = 3 * time.Second

	// portAttempts bounds the retries when another process takes the
	// port chosen for versitygw between our probe and its bind.
	portAttempts = 5

	// healthPath cannot be a bucket name (buckets have no underscore),
	// so it never hides a scenario bucket.
	healthPath = "/_health"
)

// gateway is one running versitygw serving one region.
type gateway struct {
	region  string
	addr    string // host:port it listens on
	logPath string
	root    Credentials
	bin     string
	cmd     *exec.Cmd
	s3      *s3.Client // signed as root

	// exited is closed once Wait has returned; waitErr is its result.
	exited  chan struct{}
	waitErr error
	logFile *os.File

	// logStart is the log's size when this process started.
	logStart int64

	stopOnce sync.Once
	stopErr  error
}

// findVersitygw looks for the binary on PATH, then where `go install`
// puts it: GOBIN, else the bin directory of each GOPATH entry.
func findVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}

	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}

	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoVersitygw
}

// newRootCredentials makes a key pair unique to one lab, so that nothing
// outside the lab can guess it.
func newRootCredentials() (Credentials, error) {
	key := make([]byte, 8)
	secret := make([]byte, 20)
	if _, err := rand.Read(key); err != nil {
		return Credentials{}, fmt.Errorf("generate root key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Credentials{}, fmt.Errorf("generate root secret: %w", err)
	}
	return Credentials{
		AccessKeyID:     "LABROOT" + strings.ToUpper(hex.EncodeToString(key)),
		SecretAccessKey: hex.EncodeToString(secret),
	}, nil
}

// startGateway runs versitygw for one region with its posix data, IAM
// files and log under dir, and waits until it answers.
func startGateway(
	ctx context.Context,
	bin, dir, region string,
	root Credentials,
) (*gateway, error) {
	dataDir := filepath.Join(dir, "data")
	iamDir := filepath.Join(dir, "iam")
	for _, d := range []string{dataDir, iamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create versitygw dir: %w", err)
		}
	}

	var lastErr error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		g := &gateway{
			region:  region,
			addr:    addr,
			logPath: filepath.Join(dir, "versitygw.log"),
			root:    root,
			bin:     bin,
		}
		err = g.run(ctx, dataDir, iamDir)
		if err == nil {
			g.s3 = newClient(g.url(), region, root)
			return g, nil
		}
		lastErr = err

		// Only a lost race for the port is worth another try.
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, lastErr
}

// errPortTaken means versitygw exited because its port was in use.
var errPortTaken = errors.New("port already in use")

// freeLoopbackAddr asks the kernel for a free port. It is only free until
// someone else binds it, hence the retries in startGateway.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	return addr, nil
}

// run starts the process and waits until it answers; if it does not, the
// process is stopped before run returns.
func (g *gateway) run(ctx context.Context, dataDir, iamDir string) error {
	// Appending keeps the output of an attempt that lost its port.
	logFile, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open versitygw log: %w", err)
	}
	g.logFile = logFile

	// exitError reads only this attempt's part of the log.
	fi, err := logFile.Stat()
	if err != nil {
		logFile.Close()
		return fmt.Errorf("open versitygw log: %w", err)
	}
	g.logStart = fi.Size()

	g.cmd = exec.Command(g.bin,
		"--port", g.addr,
		"--region", g.region,
		"--iam-dir", iamDir,
		"--health", healthPath,
		// Real S3 keeps connections open; so does the lab.
		"--keep-alive",
		"posix", dataDir,
	)
	// A clean environment keeps this machine's VGW_* or ROOT_* variables
	// out of the lab, and the root secret out of the process list.
	g.cmd.Env = []string{
		"ROOT_ACCESS_KEY=" + g.root.AccessKeyID,
		"ROOT_SECRET_KEY=" + g.root.SecretAccessKey,
	}
	g.cmd.Stdout = logFile
	g.cmd.Stderr = logFile
	g.cmd.Dir = filepath.Dir(dataDir)

	if err := g.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start versitygw for %s: %w", g.region, err)
	}
	g.exited = make(chan struct{})
	go func() {
		g.waitErr = g.cmd.Wait()
		g.logFile.Close()
		close(g.exited)
	}()

	if err := g.waitReady(ctx); err != nil {
		return errors.Join(err, g.stop())
	}
	return nil
}

// waitReady polls the health path until versitygw answers 200, it exits,
// or the wait times out.
func (g *gateway) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	client := &http.Client{Transport: newTransport()}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()

	for {
		// Checking for exit first means a stranger that took our port
		// is not mistaken for our versitygw.
		select {
		case <-g.exited:
			return g.exitError()
		default:
		}

		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url()+healthPath, nil)
		if err != nil {
			return fmt.Errorf("check versitygw health: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}

		select {
		case <-g.exited:
			return g.exitError()
		case <-ctx.Done():
			return fmt.Errorf("wait for versitygw on %s (log %s): %w", g.addr, g.logPath, ctx.Err())
		case <-tick.C:
		}
	}
}

// exitError explains an early exit, quoting the end of the log.
func (g *gateway) exitError() error {
	out, err := os.ReadFile(g.logPath)
	if err != nil {
		out = []byte("read log: " + err.Error())
	} else if g.logStart <= int64(len(out)) {
		out = out[g.logStart:]
	}
	if bytes.Contains(out, []byte("address already in use")) {
		return fmt.Errorf("start versitygw on %s: %w", g.addr, errPortTaken)
	}
	return fmt.Errorf("versitygw for %s exited early (%v): %s", g.region, g.waitErr, logTail(out))
}

// logTail returns the last few lines of a log, enough to show why a
// process failed.
func logTail(out []byte) string {
	const keep = 5
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > keep {
		lines = lines[len(lines)-keep:]
	}
	return strings.Join(lines, "\n")
}

func (g *gateway) url() string { return "http://" + g.addr }

// stop sends SIGTERM, kills the process if it has not exited after
// stopGrace, and waits for it, so that no zombie is left.
func (g *gateway) stop() error {
	g.stopOnce.Do(func() {
		if g.exited == nil {
			return
		}
		if g.s3 != nil {
			closeIdle(g.s3)
		}
		select {
		case <-g.exited:
			return
		default:
		}

		// ErrProcessDone only means it exited on its own meanwhile.
		err := g.cmd.Process.Signal(syscall.SIGTERM)
		if err != nil && !errors.Is(err, os.ErrProcessDone) {
			g.stopErr = fmt.Errorf("stop versitygw for %s: %w", g.region, err)
		}
		select {
		case <-g.exited:
		case <-time.After(stopGrace):
			err := g.cmd.Process.Kill()
			if err != nil && !errors.Is(err, os.ErrProcessDone) {
				g.stopErr = fmt.Errorf("kill versitygw for %s: %w", g.region, err)
			}
			<-g.exited
		}
	})
	return g.stopErr
}

// pid returns the process id, for tests that check it is gone.
func (g *gateway) pid() int { return g.cmd.Process.Pid }

// createUser adds the agent's account with the plain user role, so that
// bucket policies apply to it (the root account bypasses them).
func (g *gateway) createUser(ctx context.Context, user Credentials) error {
	_, err := g.admin(ctx,
		"create-user",
		"--access", user.AccessKeyID,
		"--secret", user.SecretAccessKey,
		"--role", "user",
	)
	if err != nil {
		return fmt.Errorf("create user %s in %s: %w", user.AccessKeyID, g.region, err)
	}
	return nil
}

// createBucket makes a bucket owned by the given account; a bucket made
// with S3 CreateBucket as root would be owned by root instead.
func (g *gateway) createBucket(ctx context.Context, bucket, owner string) error {
	_, err := g.admin(ctx, "create-bucket", "--owner", owner, "--bucket", bucket)
	if err != nil {
		return fmt.Errorf("create bucket %s in %s: %w", bucket, g.region, err)
	}
	return nil
}

// admin runs one `versitygw admin` command against this gateway.
func (g *gateway) admin(ctx context.Context, args ...string) (string, error) {
	full := append([]string{
		"admin",
		"--region", g.region,
		"--endpoint-url", g.url(),
	}, args...)
	cmd := exec.CommandContext(ctx, g.bin, full...)

	// The root secret goes in the environment, not the process list.
	cmd.Env = []string{
		"ADMIN_ACCESS_KEY=" + g.root.AccessKeyID,
		"ADMIN_SECRET_KEY=" + g.root.SecretAccessKey,
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("versitygw admin %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
