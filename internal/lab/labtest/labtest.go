// Package labtest starts lab scenarios for tests, and cleans up after them.
package labtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// startTimeout bounds a lab's start: its servers answer within a second
// or two; far longer means a missing or broken binary.
const startTimeout = time.Minute

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Scenario loads a shipped scenario by name, for example "gateway-endpoint".
func Scenario(t testing.TB, name string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(filepath.Join(Root(), "lab", "scenarios", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Start starts the lab for s in a temporary directory and stops it when
// the test ends. A missing stand-in binary fails the test, with the
// command that installs it.
func Start(t testing.TB, s *scenario.Scenario) *lab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	l, err := lab.Start(ctx, t.TempDir(), s)
	if err != nil {
		t.Fatalf("start lab %s (run `make tools` if a binary is missing): %v", s.Name, err)
	}
	t.Cleanup(func() {
		if err := l.Stop(); err != nil {
			t.Errorf("stop lab: %v", err)
		}
	})
	return l
}

// UseEnv points this process's environment at the lab, as
// `pathagent-lab run` does for a child: every variable lab.CleanEnv would
// drop is unset, and the lab's are set, until the test ends.
func UseEnv(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if len(lab.CleanEnv([]string{kv})) == 0 {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// WriteCA writes a throwaway CA certificate in PEM and returns its path.
func WriteCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pathagent test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
