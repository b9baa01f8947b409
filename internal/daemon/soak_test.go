package daemon

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/pathagent/pathagent/internal/lab/faults"
)

// soakHeapGrowth is the most the live heap may grow from the end of the
// warm-up to the end of a soak: a leak of even a hundred bytes a cycle
// shows over 10,000 cycles, while the SDK's and the runtime's own caches
// stay well below it.
const soakHeapGrowth = 4 << 20

// TestSoak runs PATHAGENT_SOAK_CYCLES probe cycles back to back against the
// lab, S3 faults coming and going, and checks that the live heap and the
// goroutines stay flat and no probe object is left. It takes about 30ms a
// cycle, so it is off unless asked for:
//
//	PATHAGENT_SOAK_CYCLES=10000 go test -run TestSoak -v -timeout 30m ./internal/daemon
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PATHAGENT_SOAK_CYCLES"))
	if n <= 0 {
		t.Skip("set PATHAGENT_SOAK_CYCLES (for example 10000) to run the soak")
	}
	f := newFaultLab(t)
	a := f.d.NewAgent(f.cfg)

	// Every path of a cycle, failing ones included, runs many times over.
	rotation := []func(){
		f.s3.Clear,
		func() { f.s3.Set(faults.S3Get, faults.S3Fault{Corrupt: true}) },
		f.s3.Clear,
		func() { f.s3.Set(faults.S3Put, faults.S3Fault{Status: 503, Code: "SlowDown"}) },
		f.s3.Clear,
		func() { f.s3.Set(faults.S3List, faults.S3Fault{Reset: true}) },
	}

	warm := min(n/10, 500)
	var heap0 uint64
	var g0 int
	for i := range n {
		if i%20 == 0 {
			rotation[(i/20)%len(rotation)]()
		}
		f.d.cycle(a)
		if i == warm {
			heap0, g0 = liveHeap(), runtime.NumGoroutine()
		}
		if i > warm && (i-warm)%(max(n/10, 1)) == 0 {
			t.Logf("cycle %d: live heap %d KiB, goroutines %d", i, liveHeap()>>10, runtime.NumGoroutine())
		}
	}
	f.s3.Clear()
	f.d.cycle(a)

	heap1, g1 := liveHeap(), runtime.NumGoroutine()
	t.Logf("after %d cycles: live heap %d KiB (was %d KiB at cycle %d), goroutines %d (was %d)",
		n, heap1>>10, heap0>>10, warm, g1, g0)
	if heap1 > heap0+soakHeapGrowth {
		t.Errorf("live heap grew by %d KiB over %d cycles", (heap1-heap0)>>10, n-warm)
	}
	if g1 > g0+2 && testing.Verbose() {
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}
	if g1 > g0+2 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if v, _ := f.value(t, "pathagent_cycles_total", nil); v != float64(n+1) {
		t.Errorf("cycles_total = %v, want %d", v, n+1)
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
