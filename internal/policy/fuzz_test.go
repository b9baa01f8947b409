package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseEvaluate feeds arbitrary documents and requests through Parse
// and Evaluate: neither may panic, errors are always *SyntaxError, and a
// result is always consistent with its statements.
func FuzzParseEvaluate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	bad, _ := filepath.Glob("testdata/bad/*.json")
	for i, file := range append(files, bad...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "s3:PutObject", probeKey, probeRole, "192.0.2.10", uint8(i))
	}
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*",`+
		`"Action":"s3:*","Resource":"arn:aws:s3:::${aws:x}*:?","Condition":`+
		`{"ForAllValues:StringLikeIfExists":{"aws:TagKeys":["${?}*","a${*}"]}}}}`),
		"S3:GETOBJECT", "arn:aws:s3:::b/k", "", "::ffff:192.0.2.1", uint8(0xff))

	f.Fuzz(func(t *testing.T, data []byte, action, resource, principal, ip string, mode uint8) {
		p, err := Parse(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "policy: ") {
				t.Fatalf("Parse error %T %q is not a *SyntaxError", err, err)
			}
			return
		}

		// The mode bits choose which keys the request carries.
		var ctx Context
		if mode&1 != 0 {
			ctx.Set("aws:SourceVpce", "vpce-1a2b3c4d")
			ctx.Set("aws:VpcSourceIp", ip)
		} else {
			ctx.Set("aws:SourceIp", ip)
		}
		if mode&2 != 0 {
			ctx.SetUnknown("aws:SourceIp")
		}
		if mode&4 != 0 {
			ctx.Set("aws:TagKeys", "a", ip, "")
		}
		if mode&8 != 0 {
			ctx.Set("aws:SecureTransport")
		}
		req := Request{Action: action, Resource: resource, Principal: principal, Context: ctx}

		r := Evaluate(p, req)
		if len(r.Statements) != len(p.Statements) {
			t.Fatalf("%d results for %d statements", len(r.Statements), len(p.Statements))
		}
		for _, s := range r.Statements {
			if !strings.HasPrefix(s.Reason, s.Name()+" ") {
				t.Fatalf("reason %q does not start with %s", s.Reason, s.Name())
			}
		}
		for _, s := range r.Deciding {
			ok := false
			switch r.Decision {
			case ExplicitDeny:
				ok = s.Effect == EffectDeny && s.Match == MatchYes
			case Allow:
				ok = s.Effect == EffectAllow && s.Match == MatchYes
			case ImplicitDeny:
				ok = s.Effect == EffectAllow && s.Match == MatchNo
			case Unknown:
				ok = s.Match == MatchUnknown
			}
			if !ok {
				t.Fatalf("%v decided by %+v", r.Decision, s)
			}
		}
		if r.Decision == Unknown && len(r.Deciding) == 0 {
			t.Fatal("unknown with no deciding statement")
		}
		if again := Evaluate(p, req); again.Explain() != r.Explain() {
			t.Fatalf("two evaluations differ:\n%s\n%s", r.Explain(), again.Explain())
		}
	})
}
