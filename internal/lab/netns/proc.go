package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace lets a server finish what it is writing after SIGTERM before
// it is killed; the lab's servers exit in milliseconds.
const stopGrace = 3 * time.Second

// Proc is a child process, typically a server run in a namespace with
// NS.Command, whose output goes to a log file. Stop it when done: it is
// waited for, so it never lingers as a zombie.
type Proc struct {
	Name    string
	LogPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}

	// waitErr is Wait's result, valid once exited is closed.
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// StartProc starts cmd with its output appended to logPath. The child is
// killed if this process dies without stopping it, so a test killed on
// timeout leaves no server behind.
func StartProc(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd.Stdout = log
	cmd.Stderr = log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, log: log, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The death signal follows the thread that forked, not the
		// process: that thread must live as long as the child. Locked,
		// it runs nothing else, so it cannot be one a locked goroutine
		// (NS.Do) takes down when it ends.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()

		if err := cmd.Start(); err != nil {
			log.Close()
			started <- fmt.Errorf("start %s: %w", name, err)
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		p.log.Close()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been waited for.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitError explains an early exit with the end of the log.
func (p *Proc) ExitError() error {
	return fmt.Errorf("%s exited (%v): %s", p.Name, p.waitErr, LogTail(p.LogPath, 8))
}

// Stop sends SIGTERM, kills the process if it is still there after
// stopGrace, and waits for it. An exit before Stop is reported as an
// error. Calling it again returns the first result.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = p.ExitError()
			return
		default:
		}

		err := p.cmd.Process.Signal(syscall.SIGTERM)
		if err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("stop %s: %w", p.Name, err)
		}
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			// Kill fails only for a process already gone.
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p.stopErr
}

// LogTail returns the last n lines of a log file, enough to show why a
// process failed.
func LogTail(path string, n int) string {
	out, err := os.ReadFile(path)
	if err != nil {
		return "read log: " + err.Error()
	}
	lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
