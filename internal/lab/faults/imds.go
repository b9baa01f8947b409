package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// tokenPath is where IMDSv2 hands out session tokens.
const tokenPath = "/latest/api/token"

// IMDSFault is how the metadata service misbehaves. The zero value passes
// every request to the real mock.
type IMDSFault struct {
	// Delay holds every request this long before it is answered.
	Delay time.Duration

	// TokenStatus answers the token PUT with this status: 403 or 405 is
	// an IMDS that speaks only IMDSv1, and then GETs without a token are
	// answered too (the proxy gets a token of its own from the mock,
	// which speaks only IMDSv2).
	TokenStatus int

	// GetStatus answers metadata GETs with this status, 401 for a token
	// IMDS no longer accepts; Times bounds how many GETs get it (0: all).
	GetStatus int
	Times     int

	// Bodies replaces the answer for the paths it names (for example
	// /latest/dynamic/instance-identity/document) with a 200 and its
	// text.
	Bodies map[string]string
}

// IMDS is a proxy in front of the lab's metadata mock that misbehaves as
// told.
type IMDS struct {
	base string
	rp   *httputil.ReverseProxy

	mu       sync.Mutex
	fault    IMDSFault
	gets     int
	requests int
}

// NewIMDS proxies to the mock at base, for example http://127.0.0.1:1338.
func NewIMDS(base string) (*IMDS, error) {
	to, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &IMDS{base: base, rp: &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(to) },
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}}, nil
}

// Set replaces the fault.
func (m *IMDS) Set(f IMDSFault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault, m.gets = f, 0
}

// Requests returns how many requests came, token PUTs included.
func (m *IMDS) Requests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	f := m.fault
	m.requests++
	isToken := r.Method == http.MethodPut && r.URL.Path == tokenPath
	getFault := false
	if !isToken && f.GetStatus != 0 && (f.Times == 0 || m.gets < f.Times) {
		m.gets++
		getFault = true
	}
	m.mu.Unlock()

	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	body, replaced := f.Bodies[strings.TrimSuffix(r.URL.Path, "/")]
	switch {
	case isToken && f.TokenStatus != 0:
		w.WriteHeader(f.TokenStatus)
	case getFault:
		w.WriteHeader(f.GetStatus)
	case !isToken && replaced:
		w.Write([]byte(body))
	default:
		if f.TokenStatus != 0 && r.Header.Get(tokenHeader) == "" {
			tok, err := m.token(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			r.Header.Set(tokenHeader, tok)
		}
		m.rp.ServeHTTP(w, r)
	}
}

// tokenHeader carries an IMDSv2 token on a metadata request.
const tokenHeader = "X-Aws-Ec2-Metadata-Token"

// token asks the mock for a session token.
func (m *IMDS) token(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.base+tokenPath, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "60")
	resp, err := m.rp.Transport.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	tok, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("imds fault proxy: get a token: status %d, %v", resp.StatusCode, err)
	}
	return string(tok), nil
}
