package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func load(t testing.TB, file string) *Policy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	return p
}

// Every good policy in testdata parses.
func TestParseGood(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in testdata: %v", err)
	}
	for _, f := range files {
		load(t, filepath.Base(f))
	}
}

func TestParseShape(t *testing.T) {
	p := load(t, "vpce-only.json")
	if p.Version != Version2012 || p.ID != "pathagent-vpce-only" || len(p.Statements) != 2 {
		t.Fatalf("policy = %+v", p)
	}
	got := p.Statements[0]
	got.Conditions[0].op = operator{} // compared through Operator
	want := Statement{
		Sid:       "DenyNotFromEndpoint",
		Effect:    EffectDeny,
		Principal: &Principal{All: true},
		Actions:   []string{"s3:*"},
		Resources: []string{"arn:aws:s3:::logs-archive", "arn:aws:s3:::logs-archive/*"},
		Conditions: []Condition{{
			Operator: "StringNotEquals",
			Key:      "aws:SourceVpce",
			Values:   []string{"vpce-1a2b3c4d"},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Statement[0] = %+v\nwant %+v", got, want)
	}

	// A single statement object, no Version, numbers and booleans as
	// condition values, NotPrincipal with two kinds.
	p, err := Parse([]byte(`{"Statement": {"Effect": "Deny",
		"NotPrincipal": {"AWS": ["111122223333"], "Service": "logging.s3.amazonaws.com"},
		"NotAction": "s3:Get*", "NotResource": "arn:aws:s3:::a/*",
		"Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"s3:max-keys": 10}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Statements[0]
	if p.Version != "" || !s.NotPrincipal || !s.NotAction || !s.NotResource ||
		s.Principal.Service[0] != "logging.s3.amazonaws.com" ||
		s.Conditions[0].Values[0] != "false" || s.Conditions[1].Values[0] != "10" {
		t.Errorf("statement = %+v", s)
	}
}

// Every bad policy is refused with the element's path and what is wrong.
func TestParseBad(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"syntax.json", `policy: Statement[0]: invalid JSON at byte 59: invalid character ',' looking for beginning of object key string`},
		{"truncated.json", `policy: Statement[0]: invalid JSON: the document ends too early`},
		{"trailing.json", `policy: unexpected data after the policy document`},
		{"not-object.json", `policy: want an object, got a list`},
		{"bad-version.json", `policy: Version: "2021-01-01" is not a policy language version (2012-10-17 or 2008-10-17)`},
		{"no-statement.json", `policy: Statement: missing`},
		{"empty-statement.json", `policy: Statement: empty list`},
		{"unknown-element.json", `policy: Statement[0].Efect: unknown element`},
		{"bad-effect.json", `policy: Statement[0].Effect: "Permit" is not Allow or Deny`},
		{"action-and-notaction.json", `policy: Statement: both Action and NotAction; a statement has one`},
		{"no-action.json", `policy: Statement[0]: missing Action or NotAction`},
		{"action-number.json", `policy: Statement[0].Action: want a string or a list of strings, got a number`},
		{"bad-action.json", `policy: Statement[1].Action[1]: "PutObject" is not "*" or service:action`},
		{"bad-resource.json", `policy: Statement[0].Resource: "logs-archive/*" is not "*" or an ARN`},
		{"bad-principal.json", `policy: Statement[0].Principal: "everyone" is not "*"; name principals in an object like {"AWS": "ARN"}`},
		{"principal-type.json", `policy: Statement[0].Principal.User: unknown principal type (want AWS, Service, CanonicalUser or Federated)`},
		{
			// encoding/json would keep the second block silently.
			"repeated-operator.json",
			`policy: Statement[0].Condition.StringNotEquals: repeated key`,
		},
		{"condition-not-object.json", `policy: Statement[0].Condition.StringEquals: want an object of condition keys, got a string`},
		{"no-values.json", `policy: Statement[0].Condition.StringEquals.aws:SourceVpc: no values`},
		{"bad-ip.json", `policy: Statement[0].Condition.NotIpAddress.aws:SourceIp[1]: "10.0.0.256/8" is not an IP address or CIDR`},
		{"bad-bool.json", `policy: Statement[0].Condition.Bool.aws:SecureTransport: "no" is not true or false`},
		{"null-if-exists.json", `policy: Statement[0].Condition.NullIfExists: Null has no IfExists form`},
	}
	files, _ := filepath.Glob("testdata/bad/*.json")
	if len(files) != len(tests) {
		t.Errorf("testdata/bad has %d files, the table %d", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "bad", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %v, want a *SyntaxError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse([]byte(" \n")); err == nil || err.Error() != "policy: empty document" {
		t.Errorf("Parse(blank) = %v, want policy: empty document", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, maxPolicyBytes+1))
	want := "policy: 65537 bytes is more than the 65536 a policy may have"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %s", err, want)
	}
}
