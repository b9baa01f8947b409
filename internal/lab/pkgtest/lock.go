// Package pkgtest builds pathagent's .deb for tests and serializes the
// tests that install it on this machine: `go test ./...` runs packages in
// parallel processes, and each such test both checks that no pathagent
// package is installed and then installs and purges one, so two of them
// must never overlap.
package pkgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Path is the lock file. It stays after use: removing it would let a
// waiter lock a file nobody else opens any more.
const Path = "/run/lock/pathagent-dpkg.lock"

// poll spaces the attempts to take the lock; a holder keeps it for the
// seconds an install, a check and a purge take.
const poll = 100 * time.Millisecond

// Acquire takes the lock, waiting until ctx ends. The returned function
// releases it. The lock is the kernel's (flock), so a test process killed
// while holding it frees it.
func Acquire(ctx context.Context) (release func() error, err error) {
	f, err := os.OpenFile(Path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open package lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", Path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: held by another test: %w", Path, ctx.Err())
		case <-time.After(poll):
		}
	}
	// Closing the file releases the lock.
	return f.Close, nil
}
