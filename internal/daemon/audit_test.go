package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/audit"
	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/labtest"
)

// The daemon runs against every shipped scenario through a spell of
// refused puts and failing DNS; afterwards every bucket holds exactly what
// it held before, byte for byte, and no probe object.
func TestAuditAcrossScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(labtest.Root(), "lab", "scenarios", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	denyPut := func(bucket string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",` +
			`"Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/*"}]}`
	}

	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := newHarness(t, name)
			h.cfg.Timeout = probeTimeout
			h.cfg.Buckets[0].ExpectPath = ""

			before, err := audit.Snapshot(ctx, h.lab)
			if err != nil {
				t.Fatal(err)
			}
			h.start(t)
			waitFor(t, "a cycle", 15*time.Second, func() bool { return h.cycles(t) >= 1 })

			// Puts refused where the scenario has no policy of its
			// own to keep.
			for _, b := range h.s.Buckets {
				if b.Policy == "" {
					if err := h.lab.S3.SetBucketPolicy(ctx, b.Name, denyPut(b.Name)); err != nil {
						t.Fatal(err)
					}
				}
			}
			h.nextCycle(t)
			for _, b := range h.s.Buckets {
				if b.Policy == "" {
					if err := h.lab.S3.SetBucketPolicy(ctx, b.Name, ""); err != nil {
						t.Fatal(err)
					}
				}
			}

			// Then every S3 name fails to resolve.
			var names []string
			for _, r := range h.s.DNS {
				if !strings.HasPrefix(r.Name, "*") {
					names = append(names, r.Name)
					h.lab.DNS.SetFault(r.Name, dnsserver.Fault{Rcode: dns.RcodeServerFailure})
				}
			}
			h.nextCycle(t)
			for _, n := range names {
				h.lab.DNS.SetFault(n, dnsserver.Fault{})
			}
			h.nextCycle(t)
			h.shutdown(t)

			after, err := audit.Snapshot(ctx, h.lab)
			if err != nil {
				t.Fatal(err)
			}
			if ch := audit.UserChanges(before, after); len(ch) > 0 {
				t.Errorf("user objects changed: %v", ch)
			}
			if p := after.ProbeObjects(); len(p) > 0 {
				t.Errorf("probe objects left behind: %v", p)
			}
		})
	}
}
