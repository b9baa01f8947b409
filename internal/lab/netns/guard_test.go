package netns

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// twoNamespaces makes a and b joined by one veth, 10.99.0.1/24 in a and
// 10.99.0.2/24 in b, and removes them when the test ends.
func twoNamespaces(t *testing.T) (a, b *NS) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not found on PATH")
	}
	ctx := context.Background()
	tag := strconv.Itoa(os.Getpid())

	var err error
	if a, err = Add(ctx, "pa-ga-"+tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Delete(ctx); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	if b, err = Add(ctx, "pa-gb-"+tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Delete(ctx); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})

	if err := Veth(ctx, a, "ga"+tag, b, "gb"+tag); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		ns   *NS
		args []string
	}{
		{a, []string{"addr", "add", "10.99.0.1/24", "dev", "ga" + tag}},
		{b, []string{"addr", "add", "10.99.0.2/24", "dev", "gb" + tag}},
	} {
		if err := s.ns.IP(ctx, s.args...); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func TestContained(t *testing.T) {
	tests := []struct {
		name  string
		route []string // added in a
		only  bool     // check a alone, as if b were outside
		want  string   // part of the error; "" for none
	}{
		{name: "default via the peer", route: []string{"default", "via", "10.99.0.2"}},
		{name: "blackhole default", route: []string{"blackhole", "default"}},
		{name: "prohibit default", route: []string{"prohibit", "default"}},
		{
			// On the link but nobody in the lab owns it: it could be
			// a machine on a real network.
			name:  "gateway nobody owns",
			route: []string{"203.0.113.0/24", "via", "10.99.0.77"},
			want:  "route 203.0.113.0/24 via 10.99.0.77 leaves the lab",
		},
		{
			name: "peer outside the lab",
			only: true,
			want: "has its peer outside the lab",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := twoNamespaces(t)
			ctx := context.Background()
			if tt.route != nil {
				if err := a.IP(ctx, append([]string{"route", "add"}, tt.route...)...); err != nil {
					t.Fatal(err)
				}
			}

			world := []*NS{a, b}
			if tt.only {
				world = world[:1]
			}
			err := Contained(ctx, world...)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Contained: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Contained: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestDo checks that a socket opened with Do lives in the namespace: a
// listener on the namespace's address, which this process's own
// namespace does not have, accepts a connection made from the peer.
func TestDo(t *testing.T) {
	a, b := twoNamespaces(t)

	ln, err := a.Listen("tcp", "10.99.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()

	c, err := b.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", b.Name, err)
	}
	c.Close()
}
