package probes

import (
	"syscall"
	"testing"
)

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		want Reason
	}{
		{"success", Result{Success: true}, ""},
		{"skipped", Result{Skipped: true}, ""},
		{"dns", Result{FailedIn: PhaseResolve}, ReasonDNS},
		{"connect timeout", Result{FailedIn: PhaseConnect, TimedOut: true}, ReasonConnectTimeout},
		{"connect refused", Result{FailedIn: PhaseConnect, err: syscall.ECONNREFUSED}, ReasonConnectRefused},
		{"unreachable", Result{FailedIn: PhaseConnect, err: syscall.ENETUNREACH}, ReasonNetwork},
		{"tls", Result{FailedIn: PhaseTLS}, ReasonTLS},
		{"mismatch", Result{FailedIn: PhaseVerify}, ReasonContentMismatch},
		{"access denied", Result{FailedIn: PhaseRequest, Code: "AccessDenied", HTTPStatus: 403}, ReasonAccessDenied},
		// HEAD answers carry no body, so no code: the status decides.
		{"bare 403", Result{FailedIn: PhaseRequest, HTTPStatus: 403}, ReasonAccessDenied},
		{"redirect", Result{FailedIn: PhaseRequest, Code: "PermanentRedirect", HTTPStatus: 301}, ReasonWrongRegion},
		{"signed for the wrong region", Result{FailedIn: PhaseRequest, Code: "AuthorizationHeaderMalformed", HTTPStatus: 400}, ReasonWrongRegion},
		{"no bucket", Result{FailedIn: PhaseRequest, Code: "NoSuchBucket", HTTPStatus: 404}, ReasonNoSuchBucket},
		{"bad key", Result{FailedIn: PhaseRequest, Code: "InvalidAccessKeyId", HTTPStatus: 403}, ReasonCredentials},
		{"skew", Result{FailedIn: PhaseRequest, Code: "RequestTimeTooSkewed", HTTPStatus: 403}, ReasonClockSkew},
		{"slow down", Result{FailedIn: PhaseRequest, Code: "SlowDown", HTTPStatus: 503}, ReasonThrottled},
		{"internal error", Result{FailedIn: PhaseRequest, Code: "InternalError", HTTPStatus: 500}, ReasonServerError},
		{"other 4xx", Result{FailedIn: PhaseRequest, Code: "InvalidRequest", HTTPStatus: 400}, ReasonClientError},
		{"read timeout", Result{FailedIn: PhaseRequest, TimedOut: true}, ReasonTimeout},
		{"reset", Result{FailedIn: PhaseRequest}, ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Reason(); got != tt.want {
				t.Errorf("Reason() = %q, want %q", got, tt.want)
			}
		})
	}
}
