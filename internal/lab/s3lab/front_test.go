package s3lab

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echoServer tells each client the address it sees the client at, on one
// line, then echoes what the client sends and half-closes when the client
// has finished sending.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Write and copy errors are left to the client side,
			// which checks what it receives.
			go func() {
				defer c.Close()
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				io.WriteString(c, host+"\n")
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestForwarder(t *testing.T) {
	target := echoServer(t)
	routes := []route{
		{address: "127.52.216.20", source: "127.16.1.10", target: target},
		{address: "127.52.216.21", source: "127.100.0.20", target: target},
	}
	f, err := openFronts(routes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close() })

	if f.port == 0 {
		t.Fatal("port 0 after opening fronts")
	}
	for _, ln := range f.listeners {
		if p := ln.Addr().(*net.TCPAddr).Port; p != f.port {
			t.Errorf("front %s on port %d, want the common port %d", ln.Addr(), p, f.port)
		}
	}

	for _, r := range routes {
		t.Run(r.address, func(t *testing.T) {
			c, err := net.Dial("tcp", net.JoinHostPort(r.address, strconv.Itoa(f.port)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)

			seen, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(seen); got != r.source {
				t.Errorf("server saw %s, want the front's source %s", got, r.source)
			}

			// The echo only ends if our half-close reaches the server
			// and its half-close comes back.
			const msg = "hello through the front"
			io.WriteString(c, msg)
			c.(*net.TCPConn).CloseWrite()
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != msg {
				t.Errorf("echo = %q, want %q", rest, msg)
			}
		})
	}
}

func TestForwarderCloseEndsConnections(t *testing.T) {
	target := echoServer(t)
	f, err := openFronts([]route{
		{address: "127.52.216.22", source: "127.16.1.10", target: target},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.52.216.22", strconv.Itoa(f.port))

	// A connection left open, as an idle keep-alive one would be.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	if err := f.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read on a forwarded connection after close succeeded")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Error("front still accepts after close")
	}
}

func TestOpenFrontsErrors(t *testing.T) {
	tests := []struct {
		name    string
		routes  []route
		wantErr string
	}{
		{
			name: "address twice",
			routes: []route{
				{address: "127.52.216.23", source: "127.16.1.10"},
				{address: "127.52.216.23", source: "127.100.0.20"},
			},
			wantErr: "open s3 fronts: address 127.52.216.23 used twice",
		},
		{
			name:    "bad source",
			routes:  []route{{address: "127.52.216.24", source: "nat"}},
			wantErr: `open s3 front 127.52.216.24: source: ParseAddr("nat"): unable to parse IP`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := openFronts(tt.routes)
			if err == nil {
				f.close()
				t.Fatalf("openFronts succeeded, want %q", tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("openFronts: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestWithOwnerGrant(t *testing.T) {
	const deny = `{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}`
	tests := []struct {
		name      string
		policy    string
		wantStmts int
		wantErr   string
	}{
		{
			name:      "statement list",
			policy:    `{"Version":"2012-10-17","Statement":[` + deny + `]}`,
			wantStmts: 2,
		},
		{
			name:      "single statement object",
			policy:    `{"Statement":` + deny + `}`,
			wantStmts: 2,
		},
		{
			name:      "no statement",
			policy:    `{"Version":"2012-10-17"}`,
			wantStmts: 1,
		},
		{
			name:    "not json",
			policy:  `deny`,
			wantErr: "parse policy of bucket b: invalid character 'd' looking for beginning of value",
		},
		{
			name:    "statement a string",
			policy:  `{"Statement":"x"}`,
			wantErr: "parse policy of bucket b: Statement is a string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withOwnerGrant(tt.policy, "b", "AKIAOWNER")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("withOwnerGrant error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(got, `"Effect"`); n != tt.wantStmts {
				t.Errorf("%d statements in %s, want %d", n, got, tt.wantStmts)
			}
			if !strings.Contains(got, `"Sid":"`+ownerGrantSid+`"`) ||
				!strings.Contains(got, `"Principal":{"AWS":"AKIAOWNER"}`) {
				t.Errorf("owner grant missing from %s", got)
			}
		})
	}
}
