// Package netns builds a stand-in VPC out of Linux network namespaces joined
// by veth pairs: an instance, the VPC router with the instance metadata
// service, the VPC resolver and the EC2 API, and a service namespace where
// S3 lives, all over TLS on the real AWS names. Nothing in it is linked to
// the machine's own namespace, so no packet can leave the machine. It needs
// root, iproute2 and, for the internet gateway's NAT, nftables.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// runDir is where `ip netns add` pins a namespace under its name.
const runDir = "/run/netns"

// EtcDir holds each namespace's own files: `ip netns exec NAME` bind-mounts
// EtcDir/NAME/FILE over /etc/FILE, so a program run there reads that
// namespace's resolv.conf unchanged.
const EtcDir = "/etc/netns"

// NS is a named network namespace made by Add.
type NS struct {
	Name string

	// madeEtcDir says that Add's caller created EtcDir, so Delete removes
	// it once it is empty.
	madeEtcDir bool
}

// Add creates the namespace name and brings its loopback up. A namespace
// of that name left over from an earlier run is an error: it may belong to
// someone else.
func Add(ctx context.Context, name string) (*NS, error) {
	if _, err := os.Stat(filepath.Join(runDir, name)); err == nil {
		return nil, fmt.Errorf("add namespace %s: it already exists", name)
	}
	if err := ip(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{Name: name}
	if err := n.IP(ctx, "link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(err, n.Delete(ctx))
	}
	return n, nil
}

// Delete removes the namespace and its files under EtcDir. Its links go
// with it, provided no process or socket still holds the namespace: stop
// those first.
func (n *NS) Delete(ctx context.Context) error {
	var errs []error
	if err := os.RemoveAll(filepath.Join(EtcDir, n.Name)); err != nil {
		errs = append(errs, fmt.Errorf("remove files of namespace %s: %w", n.Name, err))
	}
	if n.madeEtcDir {
		// Only if empty: another namespace may have put files there since.
		if err := os.Remove(EtcDir); err != nil && !os.IsNotExist(err) && !isNotEmpty(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", EtcDir, err))
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, n.Name)); err == nil {
		errs = append(errs, ip(ctx, "netns", "delete", n.Name))
	}
	return errors.Join(errs...)
}

func isNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)
}

// IP runs `ip -n NAME ARGS...`.
func (n *NS) IP(ctx context.Context, args ...string) error {
	return ip(ctx, append([]string{"-n", n.Name}, args...)...)
}

// IPOutput runs `ip -n NAME ARGS...` and returns what it printed.
func (n *NS) IPOutput(ctx context.Context, args ...string) ([]byte, error) {
	return ipOutput(ctx, append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs bin in the namespace through
// `ip netns exec`, which also mounts the namespace's files from EtcDir.
// ip execs bin in its own place, so the command's process is bin's: killing
// and waiting for it stops bin.
func (n *NS) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, bin}, args...)...)
}

// CommandContext is Command for a short-lived program that ctx bounds.
func (n *NS) CommandContext(ctx context.Context, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, bin}, args...)...)
}

// SetResolvConf writes the resolv.conf programs run with Command read:
// one line per nameserver, as on an instance.
func (n *NS) SetResolvConf(nameservers ...string) error {
	if _, err := os.Stat(EtcDir); os.IsNotExist(err) {
		if err := os.Mkdir(EtcDir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", EtcDir, err)
		}
		n.madeEtcDir = true
	}
	dir := filepath.Join(EtcDir, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the pathagent netns lab for namespace %s.\n", n.Name)
	for _, s := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(b.String()), 0o644)
}

// Do runs f on an OS thread that has joined the namespace. Sockets f
// creates belong to the namespace for their whole life, whichever thread
// uses them later; that is how this process serves and dials inside a
// namespace without a helper binary.
func (n *NS) Do(f func() error) error {
	done := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine ends, the
		// runtime ends the thread too, so no other goroutine ever runs
		// in the namespace by accident.
		runtime.LockOSThread()

		fd, err := unix.Open(filepath.Join(runDir, n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("open namespace %s: %w", n.Name, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// Listen opens a stream listener inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside the namespace.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext connects from inside the namespace. addr must be an address
// literal: a name would be looked up with this process's resolv.conf, not
// the namespace's.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Veth creates a veth pair with one end, aName, in a and the other, bName,
// in b, both up. Each end is created directly in its namespace, so neither
// ever exists in the machine's own.
func Veth(ctx context.Context, a *NS, aName string, b *NS, bName string) error {
	err := ip(ctx, "link", "add", aName, "netns", a.Name,
		"type", "veth", "peer", "name", bName, "netns", b.Name)
	if err != nil {
		return err
	}
	return errors.Join(
		a.IP(ctx, "link", "set", aName, "up"),
		b.IP(ctx, "link", "set", bName, "up"),
	)
}

// RemoveStale deletes the namespaces, and their files under EtcDir, that
// Start made with a process id as its tag for a process that no longer
// exists: what a run killed before its cleanup leaves behind. Their
// servers died with it (see StartProc).
func RemoveStale(ctx context.Context) error {
	names, err := Names(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		pid, ok := stalePid(name)
		if !ok {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue
		}
		// The run may have made EtcDir: take it too if this empties it.
		errs = append(errs, (&NS{Name: name, madeEtcDir: true}).Delete(ctx))
	}
	return errors.Join(errs...)
}

// stalePid returns the process id in a name Start makes with a pid tag.
func stalePid(name string) (int, bool) {
	for _, prefix := range namePrefixes {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			pid, err := strconv.Atoi(rest)
			return pid, err == nil && pid > 0
		}
	}
	return 0, false
}

// Names lists the named namespaces, as `ip netns list` shows them.
func Names(ctx context.Context) ([]string, error) {
	out, err := ipOutput(ctx, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// A line is "NAME" or "NAME (id: N)".
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

func ip(ctx context.Context, args ...string) error {
	_, err := ipOutput(ctx, args...)
	return err
}

func ipOutput(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
