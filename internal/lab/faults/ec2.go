package faults

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// EC2Fault is how one EC2 action is answered. The zero value passes the
// request to the real handler.
type EC2Fault struct {
	// Status, with Code, answers with EC2's error document.
	Status int
	Code   string

	// Body, when set, is sent as a 200 answer instead of the real one:
	// malformed XML, for example.
	Body string

	// Delay holds the request this long before handling it as the other
	// fields say; Hang holds it until the client gives up.
	Delay time.Duration
	Hang  bool
}

// EC2 wraps the lab's EC2 API handler and lets tests make actions fail.
type EC2 struct {
	next http.Handler

	mu     sync.Mutex
	faults map[string]EC2Fault // by action; "" for every action
	calls  map[string]int
}

// NewEC2 wraps next, the lab's EC2 API handler.
func NewEC2(next http.Handler) *EC2 {
	return &EC2{next: next, faults: map[string]EC2Fault{}, calls: map[string]int{}}
}

// Set makes action (or every action, for "") meet f; the zero EC2Fault
// heals it.
func (e *EC2) Set(action string, f EC2Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f == (EC2Fault{}) {
		delete(e.faults, action)
		return
	}
	e.faults[action] = f
}

// Calls returns how many requests (attempts, retries included) named each
// action, whatever the answer.
func (e *EC2) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.calls))
	for k, v := range e.calls {
		out[k] = v
	}
	return out
}

func (e *EC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	action := form.Get("Action")

	e.mu.Lock()
	e.calls[action]++
	f, ok := e.faults[action]
	if !ok {
		f = e.faults[""]
	}
	e.mu.Unlock()

	if f.Hang {
		<-r.Context().Done()
		return
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<Response><Errors><Error><Code>%s</Code><Message>injected fault</Message>`+
			`</Error></Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>`,
			f.Code)
	case f.Body != "":
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		io.WriteString(w, f.Body)
	default:
		e.next.ServeHTTP(w, r)
	}
}
