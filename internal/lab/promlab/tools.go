package promlab

import (
	"os/exec"
	"strings"
	"testing"
)

// Tools returns the paths of promtool and prometheus, failing the test with
// the command that installs them when either is missing.
func Tools(t testing.TB) (promtool, prometheus string) {
	t.Helper()
	var missing []string
	find := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		return p
	}
	promtool, prometheus = find("promtool"), find("prometheus")
	if len(missing) > 0 {
		t.Fatalf("%s not found on PATH: run `make test`, which installs Debian's prometheus package",
			strings.Join(missing, " and "))
	}
	return promtool, prometheus
}
