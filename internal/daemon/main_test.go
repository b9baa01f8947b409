package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test of the package, the fault tests above all, must end with no
// goroutine of its own still running: a fault that leaves one behind
// would, in a daemon that runs for months, leave one every cycle.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
