package imdsmock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrBinaryMissing means a lab tool is neither on PATH nor where
// `go install` puts it.
var ErrBinaryMissing = errors.New("lab binary missing, run `make tools`")

// goEnvTimeout bounds the `go env` call. It reads a few variables and
// starts in well under a second; a hung toolchain must not hang a test.
const goEnvTimeout = 10 * time.Second

// FindBinary returns the path of the lab tool name: the one on PATH if there
// is one, else the one `go install` left in GOBIN or the first GOPATH's bin.
// The error wraps ErrBinaryMissing when neither exists.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}

	dir := installDir()
	if dir == "" {
		return "", fmt.Errorf("find %s on PATH: %w", name, ErrBinaryMissing)
	}

	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("find %s on PATH and in %s: %w", name, dir, ErrBinaryMissing)
}

// installDir is where `go install` writes binaries, or "" when go is not
// installed either.
func installDir() string {
	// Ask go itself rather than reading the environment: `go env -w` can
	// set GOBIN or GOPATH in a file no environment variable shows.
	ctx, cancel := context.WithTimeout(context.Background(), goEnvTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return fallbackInstallDir()
	}

	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 2 {
		if gobin := strings.TrimSpace(lines[0]); gobin != "" {
			return gobin
		}
		if gopath := firstPath(lines[1]); gopath != "" {
			return filepath.Join(gopath, "bin")
		}
	}
	return fallbackInstallDir()
}

// fallbackInstallDir repeats go's defaults for a machine where the go
// command cannot be run.
func fallbackInstallDir() string {
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		return gobin
	}
	if gopath := firstPath(os.Getenv("GOPATH")); gopath != "" {
		return filepath.Join(gopath, "bin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, "go", "bin")
}

// firstPath returns the first entry of a GOPATH-style list: the one
// `go install` writes to.
func firstPath(list string) string {
	for _, p := range filepath.SplitList(strings.TrimSpace(list)) {
		if p != "" {
			return p
		}
	}
	return ""
}
