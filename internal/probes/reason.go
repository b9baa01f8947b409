package probes

import (
	"errors"
	"strings"
	"syscall"
)

// Reason is why a probe failed, from a small fixed set that is safe to use
// as a metric label. docs/metrics.md lists them.
type Reason string

// The failure reasons.
const (
	ReasonAccessDenied    Reason = "access_denied"
	ReasonWrongRegion     Reason = "wrong_region"
	ReasonNoSuchBucket    Reason = "no_such_bucket"
	ReasonCredentials     Reason = "credentials"
	ReasonClockSkew       Reason = "clock_skew"
	ReasonThrottled       Reason = "throttled"
	ReasonServerError     Reason = "server_error"
	ReasonClientError     Reason = "client_error"
	ReasonDNS             Reason = "dns"
	ReasonConnectTimeout  Reason = "connect_timeout"
	ReasonConnectRefused  Reason = "connect_refused"
	ReasonNetwork         Reason = "network"
	ReasonTLS             Reason = "tls"
	ReasonTimeout         Reason = "timeout"
	ReasonContentMismatch Reason = "content_mismatch"
	ReasonOther           Reason = "other"
)

// Reason classifies a failed probe; it is empty for a probe that succeeded
// or was skipped.
func (r Result) Reason() Reason {
	if r.Success || r.Skipped {
		return ""
	}

	switch r.FailedIn {
	case PhaseResolve:
		return ReasonDNS
	case PhaseConnect:
		return connectReason(r)
	case PhaseTLS:
		return ReasonTLS
	case PhaseVerify:
		return ReasonContentMismatch
	}

	switch r.Code {
	case "AccessDenied", "AllAccessDisabled":
		return ReasonAccessDenied
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return ReasonWrongRegion
	case "NoSuchBucket":
		return ReasonNoSuchBucket
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return ReasonCredentials
	case "RequestTimeTooSkewed":
		return ReasonClockSkew
	case "SlowDown":
		return ReasonThrottled
	}
	switch {
	case r.HTTPStatus == 301:
		return ReasonWrongRegion
	case r.HTTPStatus == 403:
		return ReasonAccessDenied
	case r.HTTPStatus == 503:
		return ReasonThrottled
	case r.HTTPStatus >= 500:
		return ReasonServerError
	case r.HTTPStatus >= 400:
		return ReasonClientError
	case r.TimedOut:
		return ReasonTimeout
	case r.HTTPStatus == 0 && r.Code == "":
		return ReasonNetwork
	}
	return ReasonOther
}

func connectReason(r Result) Reason {
	switch {
	case r.TimedOut:
		return ReasonConnectTimeout
	case errors.Is(r.err, syscall.ECONNREFUSED) || strings.Contains(r.Error, "connection refused"):
		return ReasonConnectRefused
	}
	return ReasonNetwork
}
