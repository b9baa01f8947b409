package ec2api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	sigService    = "ec2"
	sigTerminator = "aws4_request"
	amzDateLayout = "20060102T150405Z"
)

// maxClockSkew is how far a request's X-Amz-Date may be from the
// server's clock. AWS allows 15 minutes either way before answering
// RequestExpired.
const maxClockSkew = 15 * time.Minute

// authFailure is EC2's answer to a request it cannot authenticate. EC2
// says little to the caller; the detail here is for whoever debugs a lab.
func authFailure(format string, args ...any) *apiError {
	return apiErrorf(http.StatusUnauthorized, "AuthFailure", format, args...)
}

// verify checks the request's SigV4 Authorization header: the credential
// scope must name creds' access key, region and service ec2, and the
// signature must be the one creds' secret gives for the request as
// received, body included. The canonical request is rebuilt by hand from
// the headers the client says it signed.
func verify(r *http.Request, body []byte, creds aws.Credentials,
	region string, now time.Time) error {

	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), sigAlgorithm+" ")
	if !ok {
		return authFailure("the request is not signed with %s", sigAlgorithm)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}

	// Credential is KEY/DATE/REGION/SERVICE/aws4_request.
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != sigTerminator {
		return authFailure("malformed credential %q", fields["Credential"])
	}
	key, day, reqRegion, service := scope[0], scope[1], scope[2], scope[3]
	switch {
	case key != creds.AccessKeyID:
		return authFailure("AWS was not able to validate the provided access credentials")
	case reqRegion != region:
		return authFailure("credential should be scoped to a valid region, not %q", reqRegion)
	case service != sigService:
		return authFailure("credential should be scoped to correct service: %q", sigService)
	}
	if creds.SessionToken != "" &&
		r.Header.Get("X-Amz-Security-Token") != creds.SessionToken {
		return authFailure("the security token included in the request is invalid")
	}

	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse(amzDateLayout, amzDate)
	if err != nil || !strings.HasPrefix(amzDate, day) {
		return authFailure("X-Amz-Date %q is missing, malformed or not of day %q", amzDate, day)
	}
	if skew := now.Sub(at); skew > maxClockSkew || skew < -maxClockSkew {
		return apiErrorf(http.StatusBadRequest, "RequestExpired",
			"Request has expired: signed at %s, server time %s", at, now.UTC())
	}

	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signed, "host") {
		return authFailure("the host header must be signed")
	}

	canonical := strings.Join([]string{
		r.Method,
		canonicalPath(r.URL),
		canonicalQuery(r.URL.RawQuery),
		canonicalHeaders(r, signed),
		fields["SignedHeaders"],
		hexSHA256(body),
	}, "\n")
	credScope := strings.Join(scope[1:], "/")
	toSign := strings.Join([]string{
		sigAlgorithm, amzDate, credScope, hexSHA256([]byte(canonical)),
	}, "\n")

	k := hmacSHA256([]byte("AWS4"+creds.SecretAccessKey), day)
	k = hmacSHA256(k, reqRegion)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, sigTerminator)
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return authFailure("the request signature does not match")
	}
	return nil
}

func canonicalPath(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// canonicalQuery sorts the query by key, then value, each escaped as
// RFC 3986 asks.
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw) // a malformed query gives a mismatch later
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEscape(k)+"="+uriEscape(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

func uriEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// canonicalHeaders writes "name:value\n" for each signed header, with
// values trimmed and inner runs of spaces collapsed. Go's server moves
// Host and Content-Length out of the header map, so those two are
// rebuilt from the request.
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = slices.Clone(r.Header.Values(name))
			if len(values) == 0 {
				values = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			values = slices.Clone(r.Header.Values(name))
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	return b.String()
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
