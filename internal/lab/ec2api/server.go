// Package ec2api is the lab's stand-in for the EC2 API: an HTTP handler
// that speaks the EC2 Query protocol, checks SigV4 signatures and answers
// the read calls pathagent makes from a lab scenario.
package ec2api

import (
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// apiVersion is the EC2 API version the Go SDK sends and the only one
// this server knows; its responses live in the matching namespace.
const (
	apiVersion = "2016-11-15"
	namespace  = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

// maxBodyBytes bounds a request body. The agent's largest request is a
// few hundred bytes; a megabyte leaves room without letting a broken
// client fill memory.
const maxBodyBytes = 1 << 20

// deniedMessage is the text EC2 gives when IAM refuses an action.
const deniedMessage = "You are not authorized to perform this operation."

// Server answers EC2 Query requests from a scenario. Create it with New;
// set the exported fields before it serves its first request.
type Server struct {
	// Credentials are the only ones accepted: every request must carry
	// a SigV4 signature made with them for the scenario's region and
	// service ec2, or it gets AuthFailure.
	Credentials aws.Credentials

	// Deny lists actions answered with UnauthorizedOperation, as EC2
	// does when the caller's IAM policy lacks them. Change it while
	// serving only through SetDeny.
	Deny map[string]bool

	// Now is the clock request dates are checked against; time.Now
	// when nil.
	Now func() time.Time

	mu       sync.Mutex
	scenario *scenario.Scenario
	calls    map[string]int
}

// New returns a server answering from s for clients signing with creds.
// The server never modifies s, and nobody else may once it is handed over.
func New(s *scenario.Scenario, creds aws.Credentials) *Server {
	return &Server{
		Credentials: creds,
		Deny:        map[string]bool{},
		scenario:    s,
		calls:       map[string]int{},
	}
}

// SetScenario replaces the world the server describes. Requests already
// being answered finish with the old one.
func (s *Server) SetScenario(sc *scenario.Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// SetDeny replaces the set of denied actions while the server runs.
func (s *Server) SetDeny(actions ...string) {
	deny := make(map[string]bool, len(actions))
	for _, a := range actions {
		deny[a] = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.Deny = deny
}

// Calls returns how many requests named each action, whatever the
// answer: a refused call costs a real client its share of the rate
// limit just like a successful one.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// handler answers one action from a scenario and the request's
// parameters.
type handler func(sc *scenario.Scenario, p params) (response, error)

var handlers = map[string]handler{
	"DescribeRouteTables":         describeRouteTables,
	"DescribeVpcEndpoints":        describeVpcEndpoints,
	"DescribeManagedPrefixLists":  describeManagedPrefixLists,
	"GetManagedPrefixListEntries": getManagedPrefixListEntries,
	"DescribePrefixLists":         describePrefixLists,
}

// ServeHTTP answers one EC2 Query request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}

	// The SDK corrects its clock from Date when a signature fails, so
	// Date must tell the time the signature was checked against.
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))

	p, resp, err := s.answer(r, now)
	if err != nil {
		writeError(w, reqID, err)
		return
	}
	writeResponse(w, p.get("Action"), reqID, resp)
}

// answer checks a request and runs its action. It returns the parsed
// parameters, so the caller can name the response after the action.
func (s *Server) answer(r *http.Request, now time.Time) (params, response, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return nil, nil, apiErrorf(http.StatusBadRequest,
			"InvalidRequest", "read request body: %v", err)
	}

	// Parameters may come in the form body or the URL, as EC2 allows.
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, nil, apiErrorf(http.StatusBadRequest,
			"MalformedQueryString", "parse request body: %v", err)
	}
	for k, v := range r.URL.Query() {
		form[k] = append(form[k], v...)
	}
	p := params(form)
	action := p.get("Action")

	// Count before checking anything, so a test sees refused calls too.
	s.mu.Lock()
	sc, deny := s.scenario, s.Deny[action]
	if action != "" {
		s.calls[action]++
	}
	s.mu.Unlock()

	if err := verify(r, body, s.Credentials, sc.Region, now); err != nil {
		return p, nil, err
	}

	h, ok := handlers[action]
	switch {
	case action == "":
		return p, nil, apiErrorf(http.StatusBadRequest,
			"MissingAction", "The request must contain the parameter Action.")
	case p.get("Version") != apiVersion:
		return p, nil, apiErrorf(http.StatusBadRequest,
			"NoSuchVersion", "The requested version (%s) of service AmazonEC2 does not exist.",
			p.get("Version"))
	case !ok:
		return p, nil, apiErrorf(http.StatusBadRequest,
			"InvalidAction", "The action %s is not valid for this web service.", action)
	case deny:
		return p, nil, apiErrorf(http.StatusForbidden,
			"UnauthorizedOperation", deniedMessage)
	}

	// A dry run only asks whether the caller may make the call. A value
	// that is not a boolean counts as false.
	if dry, _ := strconv.ParseBool(p.get("DryRun")); dry {
		return p, nil, apiErrorf(http.StatusPreconditionFailed,
			"DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	resp, err := h(sc, p)
	return p, resp, err
}

// newRequestID returns a random id shaped like EC2's, a UUID.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // documented never to fail
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
