package imds

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathagent/pathagent/internal/lab/imdsmock"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

const scenarioPath = "../../lab/scenarios/gateway-endpoint.yaml"

// fastFail bounds how long Load may take to give up on a closed port: the
// connect is refused at once, so only the retry pause counts.
const fastFail = 2 * time.Second

// cleanEnv clears the variables the SDK reads, so the machine's settings
// cannot change a test. The CA bundle variables point nowhere: the IMDS
// client must not read them.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
		"AWS_EC2_METADATA_DISABLED",
		"AWS_EC2_METADATA_V1_DISABLED",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
	t.Setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
}

func loadScenario(t *testing.T) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(scenarioPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startMock runs amazon-ec2-metadata-mock as the scenario's instance. A
// missing binary fails the test; imdsmock's error says to run make tools.
func startMock(t *testing.T, s *scenario.Scenario) *imdsmock.Mock {
	t.Helper()
	m, err := imdsmock.Start(t.Context(), t.TempDir(), s)
	if err != nil {
		t.Fatalf("start IMDS mock: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop IMDS mock: %v", err)
		}
	})
	return m
}

// closedURL is an endpoint on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// wantIdentity is the identity the scenario describes.
func wantIdentity(s *scenario.Scenario) Identity {
	in := s.Instance
	id := Identity{
		InstanceID:       in.ID,
		Region:           s.Region,
		AvailabilityZone: in.AvailabilityZone,
		AccountID:        s.AccountID,
		MAC:              in.MAC,
		VPCID:            in.VPCID,
		SubnetID:         in.SubnetID,
		VPCCIDRs:         []netip.Prefix{netip.MustParsePrefix(in.VPCCIDR)},
		SubnetCIDR:       netip.MustParsePrefix(in.SubnetCIDR),
		PrivateIPs:       []netip.Addr{netip.MustParseAddr(in.PrivateIP)},
		TokenUsed:        true,
	}
	if in.PublicIP != "" {
		id.PublicIPs = []netip.Addr{netip.MustParseAddr(in.PublicIP)}
	}
	return id
}

func TestLoadFromMock(t *testing.T) {
	s := loadScenario(t)
	m := startMock(t, s)
	dead := closedURL(t)

	tests := []struct {
		name     string
		env      string // AWS_EC2_METADATA_SERVICE_ENDPOINT
		endpoint string // ClientOptions.Endpoint
		allowV1  bool
	}{
		{name: "endpoint from env", env: m.URL()},
		{name: "explicit endpoint beats env", env: dead, endpoint: m.URL()},

		// v1 allowed but not needed: the token is still used.
		{name: "v1 allowed", env: m.URL(), allowV1: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", tt.env)

			c := NewClient(ClientOptions{Endpoint: tt.endpoint, AllowV1: tt.allowV1})
			got, err := Load(t.Context(), c)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if want := wantIdentity(s); !reflect.DeepEqual(got, want) {
				t.Errorf("Load\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestMockRefusesTokenless(t *testing.T) {
	m := startMock(t, loadScenario(t))

	// The mock runs with -I: an IMDSv1 request gets 401, so Load's
	// success above used IMDSv2.
	resp, err := http.Get(m.URL() + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without token: status %d, want 401", resp.StatusCode)
	}
}

// fakeIMDS serves items by path under /latest/ and hands out tokens, or
// refuses them with tokenStatus. It counts the requests it gets.
type fakeIMDS struct {
	items       map[string]string
	tokenStatus int           // 0 hands out tokens
	tokenDelay  time.Duration // before answering the token PUT
	requests    atomic.Int32
}

const fakeToken = "fake-token"

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	path := strings.TrimPrefix(r.URL.Path, "/latest/")

	if path == "api/token" {
		select {
		case <-time.After(f.tokenDelay):
		case <-r.Context().Done():
			return
		}
		if f.tokenStatus != 0 {
			w.WriteHeader(f.tokenStatus)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		w.Write([]byte(fakeToken))
		return
	}

	// IMDSv1 works only when tokens are refused; otherwise a token is
	// required, as with http-tokens=required.
	tok := r.Header.Get(tokenHeader)
	if f.tokenStatus == 0 && tok != fakeToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	v, ok := f.items[path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(v))
}

// scenarioItems is what EC2 would serve for the scenario's instance.
func scenarioItems(t *testing.T, s *scenario.Scenario) map[string]string {
	t.Helper()
	in := s.Instance
	doc, err := json.Marshal(map[string]string{
		"instanceId":       in.ID,
		"region":           s.Region,
		"availabilityZone": in.AvailabilityZone,
		"accountId":        s.AccountID,
		"privateIp":        in.PrivateIP,
	})
	if err != nil {
		t.Fatal(err)
	}

	eni := "meta-data/network/interfaces/macs/" + in.MAC + "/"
	items := map[string]string{
		"dynamic/instance-identity/document": string(doc),
		"meta-data/mac":                      in.MAC,
		eni + "vpc-id":                       in.VPCID,
		eni + "subnet-id":                    in.SubnetID,
		eni + "vpc-ipv4-cidr-blocks":         in.VPCCIDR,
		eni + "subnet-ipv4-cidr-block":       in.SubnetCIDR,
		eni + "local-ipv4s":                  in.PrivateIP,
	}
	if in.PublicIP != "" {
		items[eni+"public-ipv4s"] = in.PublicIP
	}
	return items
}

func serveFake(t *testing.T, f *fakeIMDS) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoadRequestCount(t *testing.T) {
	cleanEnv(t)
	s := loadScenario(t)
	f := &fakeIMDS{items: scenarioItems(t, s)}
	c := NewClient(ClientOptions{Endpoint: serveFake(t, f)})

	if _, err := Load(t.Context(), c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := f.requests.Load(); got != Requests {
		t.Errorf("first Load made %d requests, want %d", got, Requests)
	}

	// The second Load reuses the client's token.
	f.requests.Store(0)
	if _, err := Load(t.Context(), c); err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if got := f.requests.Load(); got != Requests-1 {
		t.Errorf("second Load made %d requests, want %d", got, Requests-1)
	}
}

func TestTokenRefused(t *testing.T) {
	s := loadScenario(t)
	v1Identity := wantIdentity(s)
	v1Identity.TokenUsed = false

	tests := []struct {
		name    string
		status  int
		delay   time.Duration
		allowV1 bool
		wantErr error
	}{
		{name: "403 v2 only", status: 403, wantErr: ErrNoToken},
		{name: "404 v2 only", status: 404, wantErr: ErrNoToken},
		{name: "405 v2 only", status: 405, wantErr: ErrNoToken},
		{name: "403 v1 allowed", status: 403, allowV1: true},

		// The hop-limit case: the token reply never arrives.
		{name: "no reply v2 only", delay: time.Hour, wantErr: ErrNoToken},
		{name: "no reply v1 allowed", delay: time.Hour, allowV1: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			f := &fakeIMDS{
				items:       scenarioItems(t, s),
				tokenStatus: tt.status,
				tokenDelay:  tt.delay,
			}
			if tt.delay > 0 && tt.allowV1 {
				// After the timeout the SDK goes on without a
				// token; let the fake serve such requests.
				f.tokenStatus = http.StatusForbidden
			}
			c := NewClient(ClientOptions{
				Endpoint: serveFake(t, f),
				AllowV1:  tt.allowV1,
			})

			got, err := Load(t.Context(), c)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Load error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "--http-put-response-hop-limit 2") {
					t.Errorf("error %q does not name the hop-limit fix", err)
				}
				if errors.Is(err, ErrUnreachable) {
					t.Errorf("error %q is also ErrUnreachable", err)
				}
				return
			}
			if !reflect.DeepEqual(got, v1Identity) {
				t.Errorf("Load\n got %+v\nwant %+v", got, v1Identity)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	tests := []struct {
		name    string
		allowV1 bool
	}{
		{name: "v2 only"},
		{name: "v1 allowed", allowV1: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", closedURL(t))
			c := NewClient(ClientOptions{AllowV1: tt.allowV1})

			start := time.Now()
			_, err := Load(t.Context(), c)
			took := time.Since(start)

			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Load error = %v, want ErrUnreachable", err)
			}
			if errors.Is(err, ErrNoToken) {
				t.Errorf("error %q is also ErrNoToken", err)
			}
			if took > fastFail {
				t.Errorf("Load took %v to fail, want under %v", took, fastFail)
			}
		})
	}
}

func TestDisabledByEnv(t *testing.T) {
	cleanEnv(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	f := &fakeIMDS{items: scenarioItems(t, loadScenario(t))}
	c := NewClient(ClientOptions{Endpoint: serveFake(t, f)})

	_, err := Load(t.Context(), c)
	if !errors.Is(err, ErrDisabled) {
		t.Fatalf("Load error = %v, want ErrDisabled", err)
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("disabled client made %d requests, want 0", n)
	}
}

func TestItems(t *testing.T) {
	s := loadScenario(t)
	eni := "meta-data/network/interfaces/macs/" + s.Instance.MAC + "/"

	tests := []struct {
		name    string
		set     map[string]string // items to add or replace
		drop    []string          // items to remove (404)
		want    func(*Identity)   // change to the scenario identity
		wantErr error
	}{
		{
			name: "public and IPv6 addresses",
			set: map[string]string{
				eni + "public-ipv4s": "198.51.100.7\n",
				eni + "ipv6s":        "2001:db8::10\n2001:db8::11",
			},
			want: func(id *Identity) {
				id.PublicIPs = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
				id.IPv6s = []netip.Addr{
					netip.MustParseAddr("2001:db8::10"),
					netip.MustParseAddr("2001:db8::11"),
				}
			},
		},
		{
			name: "secondary VPC block and private IP",
			set: map[string]string{
				eni + "vpc-ipv4-cidr-blocks": "127.16.0.0/16\n127.17.0.0/16",
				eni + "local-ipv4s":          "127.16.1.10\n127.16.1.11",
			},
			want: func(id *Identity) {
				id.VPCCIDRs = append(id.VPCCIDRs, netip.MustParsePrefix("127.17.0.0/16"))
				id.PrivateIPs = append(id.PrivateIPs, netip.MustParseAddr("127.16.1.11"))
			},
		},
		{
			// The mock's way of saying "none".
			name: "empty 200 is absent",
			set:  map[string]string{eni + "public-ipv4s": "", eni + "ipv6s": "\n"},
			want: func(*Identity) {},
		},
		{
			name:    "no VPC id",
			drop:    []string{eni + "vpc-id"},
			wantErr: ErrMissing,
		},
		{
			name:    "empty subnet CIDR",
			set:     map[string]string{eni + "subnet-ipv4-cidr-block": ""},
			wantErr: ErrMissing,
		},
		{
			name: "no region in document",
			set: map[string]string{
				"dynamic/instance-identity/document": `{"instanceId":"i-1","accountId":"1"}`,
			},
			wantErr: ErrMissing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			items := scenarioItems(t, s)
			for k, v := range tt.set {
				items[k] = v
			}
			for _, k := range tt.drop {
				delete(items, k)
			}
			c := NewClient(ClientOptions{Endpoint: serveFake(t, &fakeIMDS{items: items})})

			got, err := Load(t.Context(), c)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Load error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := wantIdentity(s)
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	cleanEnv(t)
	s := loadScenario(t)
	items := scenarioItems(t, s)
	path := "network/interfaces/macs/" + s.Instance.MAC + "/subnet-ipv4-cidr-block"
	items["meta-data/"+path] = "127.16.1.0/33"
	c := NewClient(ClientOptions{Endpoint: serveFake(t, &fakeIMDS{items: items})})

	_, err := Load(t.Context(), c)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Load error = %v, want a *ParseError", err)
	}
	if pe.Path != path || pe.Value != "127.16.1.0/33" {
		t.Errorf("ParseError = %q %q, want %q %q", pe.Path, pe.Value, path, "127.16.1.0/33")
	}
}
