package policy

import (
	"strings"
	"testing"
)

const (
	probeRole   = "arn:aws:sts::111122223333:assumed-role/pathagent/i-0123456789abcdef0"
	otherRole   = "arn:aws:sts::111122223333:assumed-role/deployer/ci"
	foreignRole = "arn:aws:sts::444455556666:assumed-role/pathagent/i-0fedcba987654321f"

	bucketARN = "arn:aws:s3:::logs-archive"
	probeKey  = "arn:aws:s3:::logs-archive/pathagent-probe/i-0123456789abcdef0/1"
)

// keys builds a context from key, value pairs; the value "?" marks the key
// unknown, and values joined by "," make a multi-valued key.
func keys(kv ...string) Context {
	var c Context
	for i := 0; i+1 < len(kv); i += 2 {
		switch v := kv[i+1]; {
		case v == "?":
			c.SetUnknown(kv[i])
		case strings.Contains(v, ","):
			c.Set(kv[i], strings.Split(v, ",")...)
		default:
			c.Set(kv[i], v)
		}
	}
	return c
}

// The keys S3 sees on each path out of the VPC.
var (
	viaEndpoint = keys("aws:SourceVpce", "vpce-1a2b3c4d", "aws:SourceVpc", "vpc-111bbb22",
		"aws:VpcSourceIp", "10.1.2.3", "aws:SecureTransport", "true")
	viaOtherEndpoint = keys("aws:SourceVpce", "vpce-0f9e8d7c", "aws:SourceVpc", "vpc-999ccc88",
		"aws:VpcSourceIp", "10.9.0.5", "aws:SecureTransport", "true")
	// Through a NAT gateway whose public address the agent does not know.
	viaNAT = keys("aws:SourceIp", "?", "aws:SecureTransport", "true")
)

func viaInternet(ip string) Context {
	return keys("aws:SourceIp", ip, "aws:SecureTransport", "true")
}

func viaEndpointFrom(ip string) Context {
	return keys("aws:SourceVpce", "vpce-1a2b3c4d", "aws:SourceVpc", "vpc-111bbb22",
		"aws:VpcSourceIp", ip)
}

func put(principal, resource string, ctx Context) Request {
	return Request{Action: "s3:PutObject", Resource: resource, Principal: principal, Context: ctx}
}

func do(action, principal, resource string, ctx Context) Request {
	return Request{Action: action, Resource: resource, Principal: principal, Context: ctx}
}

type evalTest struct {
	name     string
	file     string // a policy in testdata
	policy   string // or one inline
	req      Request
	want     Decision
	deciding []string // names of the deciding statements
	words    []string // each in Result.Explain()
}

func TestEvaluate(t *testing.T) {
	tests := []evalTest{
		// Bucket policy: deny unless aws:SourceVpce is the endpoint.
		{
			name: "vpce/through the endpoint", file: "vpce-only.json",
			req:      put(probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{`statement "AllowProbeRole"`},
			words: []string{
				`the principal ` + probeRole + ` is in Principal {"AWS": ["arn:aws:iam::111122223333:role/pathagent"]}`,
				"the statement has no condition",
			},
		},
		{
			name: "vpce/through a NAT gateway", file: "vpce-only.json",
			req:      put(probeRole, probeKey, viaNAT),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyNotFromEndpoint"`},
			words: []string{`explicit deny: statement "DenyNotFromEndpoint" denies s3:PutObject: ` +
				`aws:SourceVpce is absent (the request did not come through a VPC endpoint), ` +
				`and StringNotEquals against ["vpce-1a2b3c4d"] is true for a missing key`},
		},
		{
			name: "vpce/through another endpoint", file: "vpce-only.json",
			req:      put(probeRole, probeKey, viaOtherEndpoint),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyNotFromEndpoint"`},
			words: []string{`aws:SourceVpce is "vpce-0f9e8d7c", ` +
				`and StringNotEquals against ["vpce-1a2b3c4d"] is true`},
		},
		{
			// The deny does not apply; the allow names a role, and who
			// is asking is not known.
			name: "vpce/principal not known", file: "vpce-only.json",
			req:      put("", probeKey, viaEndpoint),
			want:     Unknown,
			deciding: []string{`statement "AllowProbeRole"`},
			words:    []string{"might allow", "the request's principal is not known"},
		},
		{
			name: "vpce/another role", file: "vpce-only.json",
			req:      put(otherRole, probeKey, viaEndpoint),
			want:     ImplicitDeny,
			deciding: []string{`statement "AllowProbeRole"`},
			words: []string{"implicit deny: no statement allows the request",
				"the principal " + otherRole + " is not in Principal"},
		},
		{
			name: "vpce/action not allowed", file: "vpce-only.json",
			req:      do("s3:ListBucket", probeRole, bucketARN, viaEndpoint),
			want:     ImplicitDeny,
			deciding: []string{`statement "AllowProbeRole"`},
			words: []string{`s3:ListBucket is not in Action ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]`,
				bucketARN + ` is not in Resource`},
		},
		{
			name: "vpce/whether through the endpoint is unknown", file: "vpce-only.json",
			req:      put(probeRole, probeKey, keys("aws:SourceVpce", "?")),
			want:     Unknown,
			deciding: []string{`statement "DenyNotFromEndpoint"`},
			words: []string{`might deny s3:PutObject: aws:SourceVpce is not known, ` +
				`so StringNotEquals against ["vpce-1a2b3c4d"] cannot be decided`},
		},
		{
			name: "vpce/other bucket untouched", file: "vpce-only.json",
			req:      put(probeRole, "arn:aws:s3:::eu-reports/x", viaNAT),
			want:     ImplicitDeny,
			deciding: []string{`statement "AllowProbeRole"`},
			words:    []string{"arn:aws:s3:::eu-reports/x is not in Resource"},
		},

		// Bucket policy: deny unless aws:SourceVpc; allow the account.
		{
			name: "vpc/through the endpoint", file: "vpc-only.json",
			req:      put(probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{"Statement[1]"},
			words:    []string{`is in Principal {"AWS": ["111122223333"]}`},
		},
		{
			name: "vpc/through the internet", file: "vpc-only.json",
			req:      put(probeRole, probeKey, viaInternet("203.0.113.7")),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyOutsideVpc"`},
			words: []string{`aws:SourceVpc is absent (the request did not come through a VPC endpoint), ` +
				`and StringNotEquals against ["vpc-111bbb22"] is true for a missing key`},
		},
		{
			name: "vpc/another VPC", file: "vpc-only.json",
			req:      put(probeRole, probeKey, viaOtherEndpoint),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyOutsideVpc"`},
			words:    []string{`aws:SourceVpc is "vpc-999ccc88"`},
		},
		{
			name: "vpc/another account", file: "vpc-only.json",
			req:      put(foreignRole, probeKey, viaEndpoint),
			want:     ImplicitDeny,
			deciding: []string{"Statement[1]"},
			words:    []string{"Statement[1] does not allow s3:PutObject: the principal " + foreignRole + " is not in"},
		},

		// Bucket policy: deny unless aws:VpcSourceIp is in the VPC's range.
		{
			name: "vpc source ip/inside", file: "vpc-source-ip.json",
			req:      put(probeRole, probeKey, viaEndpointFrom("10.1.2.3")),
			want:     Allow,
			deciding: []string{`statement "AllowAll"`},
			words:    []string{`Principal {"AWS": ["*"]} covers every principal`},
		},
		{
			name: "vpc source ip/IPv6 inside", file: "vpc-source-ip.json",
			req:  put(probeRole, probeKey, viaEndpointFrom("fd00:ec2:0:a::5")),
			want: Allow,
		},
		{
			name: "vpc source ip/outside", file: "vpc-source-ip.json",
			req:      put(probeRole, probeKey, viaEndpointFrom("10.9.0.5")),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyOutsidePrivateRange"`},
			words: []string{`aws:VpcSourceIp is "10.9.0.5", ` +
				`and NotIpAddress against ["10.1.0.0/16", "fd00:ec2::/56"] is true`},
		},
		{
			name: "vpc source ip/not through an endpoint", file: "vpc-source-ip.json",
			req:      put(probeRole, probeKey, viaInternet("198.51.100.4")),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyOutsidePrivateRange"`},
			words:    []string{"aws:VpcSourceIp is absent (the request did not come through a VPC endpoint)"},
		},

		// Bucket policy: aws:SourceIp allow-list, as AWS documents it.
		{
			name: "source ip/listed", file: "source-ip-allow-list.json",
			req:      put(probeRole, probeKey, viaInternet("192.0.2.10")),
			want:     Allow,
			deciding: []string{`statement "AllowAccount"`},
			words:    []string{`is in Principal {"AWS": ["arn:aws:iam::111122223333:root"]}`},
		},
		{
			name: "source ip/listed IPv6", file: "source-ip-allow-list.json",
			req:  put(probeRole, probeKey, viaInternet("2001:db8:1234:5678::99")),
			want: Allow,
		},
		{
			name: "source ip/not listed", file: "source-ip-allow-list.json",
			req:      put(probeRole, probeKey, viaInternet("203.0.113.7")),
			want:     ExplicitDeny,
			deciding: []string{`statement "IPAllow"`},
			words: []string{`aws:SourceIp is "203.0.113.7", and NotIpAddress against ` +
				`["192.0.2.0/24", "2001:DB8:1234:5678::/64"] is true`},
		},
		{
			// The classic surprise: a gateway endpoint hides the
			// public address the allow-list was written for.
			name: "source ip/through an endpoint", file: "source-ip-allow-list.json",
			req:      put(probeRole, probeKey, viaEndpoint),
			want:     ExplicitDeny,
			deciding: []string{`statement "IPAllow"`},
			words: []string{`aws:SourceIp is absent (requests through a VPC endpoint do not carry it), ` +
				`and NotIpAddress against ["192.0.2.0/24", "2001:DB8:1234:5678::/64"] is true for a missing key`},
		},
		{
			name: "source ip/NAT address not known", file: "source-ip-allow-list.json",
			req:      put(probeRole, probeKey, viaNAT),
			want:     Unknown,
			deciding: []string{`statement "IPAllow"`},
			words:    []string{"might deny", "aws:SourceIp is not known"},
		},

		// Endpoint policy allowing only specific buckets (no Version).
		{
			name: "endpoint buckets/listed bucket", file: "endpoint-buckets.json",
			req:      do("s3:GetObject", probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{`statement "Access-to-specific-bucket-only"`},
		},
		{
			name: "endpoint buckets/other bucket", file: "endpoint-buckets.json",
			req:      put(probeRole, "arn:aws:s3:::eu-reports/x", viaEndpoint),
			want:     ImplicitDeny,
			deciding: []string{`statement "Access-to-specific-bucket-only"`},
			words: []string{`arn:aws:s3:::eu-reports/x is not in Resource ` +
				`["arn:aws:s3:::logs-archive", "arn:aws:s3:::logs-archive/*"]`},
		},
		{
			name: "endpoint buckets/other action", file: "endpoint-buckets.json",
			req:   do("s3:GetBucketPolicy", probeRole, bucketARN, viaEndpoint),
			want:  ImplicitDeny,
			words: []string{"s3:GetBucketPolicy is not in Action"},
		},

		// Endpoint policy denying PutObject: explicit deny beats allow.
		{
			name: "endpoint deny put/put", file: "endpoint-deny-put.json",
			req:      put(probeRole, probeKey, viaEndpoint),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyPut"`},
			words: []string{`statement "DenyPut" denies s3:PutObject: Principal "*" covers every principal`,
				`s3:PutObject matches Action ["s3:PutObject"]`, "the statement has no condition"},
		},
		{
			name: "endpoint deny put/get", file: "endpoint-deny-put.json",
			req:      do("s3:GetObject", probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{`statement "AllowAll"`},
		},

		// NotPrincipal.
		{
			name: "not principal/role and account listed", file: "not-principal.json",
			req:      put(probeRole, probeKey, nil0()),
			want:     Allow,
			deciding: []string{`statement "AllowAccount"`},
		},
		{
			// Listing the account does not except its other principals.
			name: "not principal/other role of the account", file: "not-principal.json",
			req:      put(otherRole, probeKey, nil0()),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyAllButProbeRole"`},
			words:    []string{"the principal " + otherRole + " is not excepted by NotPrincipal"},
		},
		{
			name: "not principal/role listed without its account", file: "not-principal.json",
			req:      do("s3:DeleteObject", probeRole, probeKey, nil0()),
			want:     Unknown,
			deciding: []string{`statement "DenyAllButOtherRole"`},
			words:    []string{"but not its account (AWS may check the account too)"},
		},
		{
			name: "not principal/same role name, other account", file: "not-principal.json",
			req:      put(foreignRole, probeKey, nil0()),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyAllButProbeRole"`},
		},
		{
			name: "not principal/principal not known", file: "not-principal.json",
			req:      put("", probeKey, nil0()),
			want:     Unknown,
			deciding: []string{`statement "DenyAllButProbeRole"`},
		},

		// NotAction with Null: outside the endpoint, only reads.
		{
			name: "not action/put outside the endpoint", file: "not-action.json",
			req:      put(probeRole, probeKey, viaInternet("198.51.100.4")),
			want:     ExplicitDeny,
			deciding: []string{`statement "ReadOnlyOutsideEndpoint"`},
			words: []string{`s3:PutObject is not in NotAction ["s3:Get*", "s3:ListBucket"]`,
				`aws:SourceVpce is absent (the request did not come through a VPC endpoint), ` +
					`and Null against ["true"] is true`},
		},
		{
			name: "not action/get outside the endpoint", file: "not-action.json",
			req:  do("s3:GetObject", probeRole, probeKey, viaInternet("198.51.100.4")),
			want: Allow,
		},
		{
			name: "not action/put through the endpoint", file: "not-action.json",
			req:  put(probeRole, probeKey, viaEndpoint),
			want: Allow,
		},

		// Bool aws:SecureTransport.
		{
			name: "secure transport/plain HTTP", file: "secure-transport.json",
			req:      do("s3:GetObject", probeRole, probeKey, keys("aws:SecureTransport", "false")),
			want:     ExplicitDeny,
			deciding: []string{`statement "AllowSSLRequestsOnly"`},
			words:    []string{`aws:SecureTransport is "false", and Bool against ["false"] is true`},
		},
		{
			name: "secure transport/TLS", file: "secure-transport.json",
			req:      do("s3:GetObject", probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{`statement "AllowAll"`},
		},

		// Wildcards: actions case-insensitive, resources case-sensitive.
		{
			name: "wildcards/get", file: "wildcards.json",
			req:  do("s3:GetObject", probeRole, "arn:aws:s3:::logs-eu/2024/01/app.log", nil0()),
			want: Allow,
		},
		{
			name: "wildcards/put via ?", file: "wildcards.json",
			req:  put(probeRole, "arn:aws:s3:::logs-eu/2024/a:b", nil0()),
			want: Allow,
		},
		{
			name: "wildcards/other year", file: "wildcards.json",
			req:   do("s3:GetObject", probeRole, "arn:aws:s3:::logs-eu/2023/01/app.log", nil0()),
			want:  ImplicitDeny,
			words: []string{"arn:aws:s3:::logs-eu/2023/01/app.log is not in Resource"},
		},
		{
			name: "wildcards/resource case", file: "wildcards.json",
			req:  do("s3:GetObject", probeRole, "arn:aws:s3:::LOGS-eu/2024/x", nil0()),
			want: ImplicitDeny,
		},
		{
			name: "wildcards/delete", file: "wildcards.json",
			req:   do("s3:DeleteObject", probeRole, "arn:aws:s3:::logs-eu/2024/x", nil0()),
			want:  ImplicitDeny,
			words: []string{`s3:DeleteObject is not in Action ["S3:get*", "s3:?utObject"]`},
		},

		// IfExists: a missing key makes the condition true, in a Deny too.
		{
			name: "if exists/deny without an endpoint", file: "if-exists.json",
			req:      do("s3:GetObject", probeRole, probeKey, viaInternet("198.51.100.9")),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenyOtherEndpoints"`},
			words: []string{`StringNotEqualsIfExists against ["vpce-1a2b3c4d", "vpce-5e6f7a8b"] ` +
				`is true for a missing key`},
		},
		{
			name: "if exists/allow through the endpoint", file: "if-exists.json",
			req:      do("s3:GetObject", probeRole, probeKey, viaEndpoint),
			want:     Allow,
			deciding: []string{`statement "AllowFromOfficeIfExists"`},
			words: []string{`aws:SourceIp is absent (requests through a VPC endpoint do not carry it), ` +
				`and IpAddressIfExists against ["198.51.100.0/24"] is true for a missing key`},
		},
		{
			// Several values of a negated operator: none may match.
			name: "if exists/second endpoint", file: "if-exists.json",
			req:  do("s3:GetObject", probeRole, probeKey, keys("aws:SourceVpce", "vpce-5e6f7a8b")),
			want: Allow,
		},
		{
			name: "if exists/other endpoint", file: "if-exists.json",
			req:  do("s3:GetObject", probeRole, probeKey, viaOtherEndpoint),
			want: ExplicitDeny,
		},

		// ForAnyValue and ForAllValues over a multi-valued key.
		{
			name: "set/known tags", file: "set-operators.json",
			req:      put(probeRole, probeKey, keys("s3:RequestObjectTagKeys", "env,team")),
			want:     Allow,
			deciding: []string{`statement "AllowKnownTags"`},
			words:    []string{`s3:RequestObjectTagKeys is ["env", "team"], and ForAllValues:StringEquals`},
		},
		{
			name: "set/a secret tag", file: "set-operators.json",
			req:      put(probeRole, probeKey, keys("s3:RequestObjectTagKeys", "env,secret-x")),
			want:     ExplicitDeny,
			deciding: []string{`statement "DenySecretTags"`},
			words:    []string{`ForAnyValue:StringLike against ["secret*"] is true`},
		},
		{
			name: "set/no tags", file: "set-operators.json",
			req:      put(probeRole, probeKey, nil0()),
			want:     Allow,
			deciding: []string{`statement "AllowKnownTags"`},
			words: []string{`s3:RequestObjectTagKeys is absent from the request, and ` +
				`ForAllValues:StringEquals against ["env", "team"] is true for a missing key`},
		},
		{
			name: "set/an unlisted tag", file: "set-operators.json",
			req:   put(probeRole, probeKey, keys("s3:RequestObjectTagKeys", "env,owner")),
			want:  ImplicitDeny,
			words: []string{`ForAllValues:StringEquals against ["env", "team"] is false`},
		},
		{
			name: "set/tags not known", file: "set-operators.json",
			req:      put(probeRole, probeKey, keys("s3:RequestObjectTagKeys", "?")),
			want:     Unknown,
			deciding: []string{`statement "DenySecretTags"`},
		},

		// Unsupported constructs make their statement Unknown.
		{
			name: "unsupported/numeric operator", file: "unsupported.json",
			req:      put(probeRole, "arn:aws:s3:::logs-archive/public/x", nil0()),
			want:     Unknown,
			deciding: []string{`statement "DenyOldKeys"`},
			words: []string{`might deny s3:PutObject: unsupported condition operator ` +
				`"NumericGreaterThan" on s3:signatureAge (numeric comparisons are not implemented)`},
		},
		{
			// The other Resource entry settles it.
			name: "unsupported/variable not needed", file: "unsupported.json",
			req:  do("s3:GetObject", probeRole, "arn:aws:s3:::logs-archive/public/x", nil0()),
			want: Allow,
		},
		{
			name: "unsupported/policy variable", file: "unsupported.json",
			req:      do("s3:GetObject", probeRole, "arn:aws:s3:::logs-archive/home/bob/x", nil0()),
			want:     Unknown,
			deciding: []string{`statement "AllowOwnPrefix"`},
			words:    []string{"unsupported policy variable ${aws:username}"},
		},
		{
			name: "unsupported/unknown operator", file: "unsupported.json",
			req:      do("s3:DeleteObject", probeRole, "arn:aws:s3:::logs-archive/public/x", nil0()),
			want:     Unknown,
			deciding: []string{`statement "DenyOddOperator"`},
			words:    []string{`unsupported condition operator "StringMatchesRegex" on aws:UserAgent`},
		},
		{
			name: "unsupported/a certain deny still decides",
			policy: `{"Version": "2012-10-17", "Statement": [
				{"Sid": "Maybe", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
				 "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
				{"Sid": "Sure", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
				{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}`,
			req:      put(probeRole, probeKey, nil0()),
			want:     ExplicitDeny,
			deciding: []string{`statement "Sure"`},
		},
		{
			name: "unsupported/multi-valued key without a set operator",
			policy: `{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
				"Condition": {"StringEquals": {"s3:RequestObjectTagKeys": "env"}}}}`,
			req:   put(probeRole, probeKey, keys("s3:RequestObjectTagKeys", "env,team")),
			want:  Unknown,
			words: []string{"unsupported use of s3:RequestObjectTagKeys, which has 2 values"},
		},

		// Policy variables exist only in Version 2012-10-17.
		{
			name: "variables/plain text in 2008-10-17",
			policy: `{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Principal": "*",
				"Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:username}/*"}}`,
			req:  do("s3:GetObject", probeRole, "arn:aws:s3:::b/${aws:username}/x", nil0()),
			want: Allow,
		},
		{
			name: "variables/escaped star is literal",
			policy: `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*",
				"Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${*}/x"}}`,
			req:  do("s3:GetObject", probeRole, "arn:aws:s3:::b/a/x", nil0()),
			want: ImplicitDeny,
		},

		// Principal kinds.
		{
			name: "principal/service",
			policy: `{"Statement": {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
				"Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs-archive/*"}}`,
			req:  put("logging.s3.amazonaws.com", probeKey, nil0()),
			want: Allow,
		},
		{
			name: "principal/service is not a role",
			policy: `{"Statement": {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
				"Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs-archive/*"}}`,
			req:  put(probeRole, probeKey, nil0()),
			want: ImplicitDeny,
		},
		{
			name: "principal/canonical user",
			policy: `{"Statement": {"Effect": "Allow", "Principal": {"CanonicalUser": "79a59df900b949e55d96a1e698fbaced"},
				"Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs-archive/*"}}`,
			req:   put(probeRole, probeKey, nil0()),
			want:  Unknown,
			words: []string{`unsupported CanonicalUser principal "79a59df900b949e55d96a1e698fbaced"`},
		},
		{
			name: "principal/unique id of a deleted role",
			policy: `{"Statement": {"Effect": "Allow", "Principal": {"AWS": "AROAEXAMPLEID0000000"},
				"Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs-archive/*"}}`,
			req:   put(probeRole, probeKey, nil0()),
			want:  Unknown,
			words: []string{`unsupported principal "AROAEXAMPLEID0000000"`},
		},
		{
			name: "principal/role with a path names its sessions",
			policy: `{"Statement": {"Effect": "Allow",
				"Principal": {"AWS": "arn:aws:iam::111122223333:role/agents/pathagent"},
				"Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs-archive/*"}}`,
			req:  put(probeRole, probeKey, nil0()),
			want: Allow,
		},

		{
			name: "keys/condition keys ignore case",
			policy: `{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
				"Condition": {"StringEquals": {"AWS:SOURCEVPCE": "vpce-1a2b3c4d"}}}}`,
			req:   put(probeRole, probeKey, viaEndpoint),
			want:  Allow,
			words: []string{`AWS:SOURCEVPCE is "vpce-1a2b3c4d", and StringEquals`},
		},

		// ARN and case-insensitive string operators, and Null false.
		{
			name: "arn/principal arn like",
			policy: `{"Version": "2012-10-17", "Statement": [
				{"Sid": "OnlyAgents", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
				 "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/path*"}}},
				{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}`,
			req: put(probeRole, probeKey,
				keys("aws:PrincipalArn", "arn:aws:iam::111122223333:role/deployer")),
			want:  ExplicitDeny,
			words: []string{`ArnNotLike against ["arn:aws:iam::*:role/path*"] is true`},
		},
		{
			name: "arn/matches",
			policy: `{"Version": "2012-10-17", "Statement": [
				{"Sid": "OnlyAgents", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
				 "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/path*"}}},
				{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}`,
			req: put(probeRole, probeKey,
				keys("aws:PrincipalArn", "arn:aws:iam::111122223333:role/pathagent")),
			want: Allow,
		},
		{
			name: "string/ignore case and null false",
			policy: `{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
				"Condition": {"StringEqualsIgnoreCase": {"aws:SourceVpce": "VPCE-1A2B3C4D"},
				              "Null": {"aws:SourceVpc": "false"}}}}`,
			req:   put(probeRole, probeKey, viaEndpoint),
			want:  Allow,
			words: []string{`aws:SourceVpc is "vpc-111bbb22", and Null against ["false"] is true`},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p *Policy
			if tt.file != "" {
				p = load(t, tt.file)
			} else {
				var err error
				if p, err = Parse([]byte(tt.policy)); err != nil {
					t.Fatal(err)
				}
			}

			r := Evaluate(p, tt.req)
			explain := r.Explain()
			if r.Decision != tt.want {
				t.Fatalf("Decision = %v, want %v\n%s", r.Decision, tt.want, explain)
			}
			if tt.deciding != nil {
				var names []string
				for _, s := range r.Deciding {
					names = append(names, s.Name())
				}
				if strings.Join(names, "|") != strings.Join(tt.deciding, "|") {
					t.Errorf("Deciding = %q, want %q", names, tt.deciding)
				}
			}
			for _, w := range tt.words {
				if !strings.Contains(explain, w) {
					t.Errorf("Explain() lacks %q:\n%s", w, explain)
				}
			}
			if len(r.Statements) != len(p.Statements) {
				t.Errorf("%d statement results for %d statements", len(r.Statements), len(p.Statements))
			}
		})
	}
}

// nil0 is a request context with no keys at all.
func nil0() Context { return Context{} }

func TestDenied(t *testing.T) {
	// Unknown, but nothing could allow it: denied either way.
	p := load(t, "source-ip-allow-list.json")
	r := Evaluate(p, put(foreignRole, probeKey, viaNAT))
	if r.Decision != Unknown || !r.Denied() {
		t.Errorf("foreign role through NAT: %v, Denied %v; want unknown and denied", r.Decision, r.Denied())
	}
	r = Evaluate(p, put(probeRole, probeKey, viaNAT))
	if r.Decision != Unknown || r.Denied() {
		t.Errorf("probe role through NAT: %v, Denied %v; want unknown, not denied", r.Decision, r.Denied())
	}
	if r := Evaluate(nil, put(probeRole, probeKey, viaNAT)); r.Decision != ImplicitDeny {
		t.Errorf("nil policy: %v, want implicit deny", r.Decision)
	}
	if got := (Result{}).Decision; got != Unknown {
		t.Errorf("zero Result decision = %v, want unknown", got)
	}
}

func TestResourceMatch(t *testing.T) {
	tests := []struct {
		pattern, resource string
		want              Match
	}{
		{"*", "arn:aws:s3:::b/k", MatchYes},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::b/a/b:c", MatchYes},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::c/a", MatchNo},
		{"arn:aws:s3:::b", "arn:aws:s3:::b/k", MatchNo},
		{"arn:aws:s3:::b?", "arn:aws:s3:::bc", MatchYes},
		{"arn:aws:s3:::b/*.log", "arn:aws:s3:::b/x:y.log", MatchYes},
		// A * that ends a segment may match past colons.
		{"arn:*:s3:::b/k", "arn:aws:s3:::b/k", MatchYes},
		{"arn:aws:*", "arn:aws:s3:::b/k", MatchYes},
		// A * inside a segment stays inside it; ? never matches a colon there.
		{"arn:aws*3:::b/k", "arn:aws:s3:::b/k", MatchNo},
		{"arn:aws?s3:::b/k", "arn:aws:s3:::b/k", MatchNo},
		{"arn:aws:s3:::B/k", "arn:aws:s3:::b/k", MatchNo},
		{"arn:aws:s3:::b/${aws:userid}", "arn:aws:s3:::b/x", MatchUnknown},
		{"arn:aws:s3:::b/${?}", "arn:aws:s3:::b/?", MatchYes},
		{"arn:aws:s3:::b/${?}", "arn:aws:s3:::b/x", MatchNo},
		// No value of the variable can make these match.
		{"arn:aws:s3:::b/${aws:userid}/*", "arn:aws:s3:::c/x/y", MatchNo},
		{"arn:aws:s3:::b/${aws:userid}/*", "arn:aws:s3:::b/x", MatchNo},
	}
	for _, tt := range tests {
		if got, _ := resourceMatch(tt.pattern, tt.resource, true); got != tt.want {
			t.Errorf("resourceMatch(%q, %q) = %v, want %v", tt.pattern, tt.resource, got, tt.want)
		}
	}
}

func TestActionMatch(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "s3:PutObject", true},
		{"s3:*", "S3:putobject", true},
		{"s3:Get*", "s3:GetObject", true},
		{"s3:Get*", "s3:PutObject", false},
		{"s3:?etObject", "s3:GetObject", true},
		{"s3:GetObject", "s3:GetObjectAcl", false},
		{"ec2:*", "s3:GetObject", false},
	}
	for _, tt := range tests {
		if got := actionMatch(tt.pattern, tt.action); got != tt.want {
			t.Errorf("actionMatch(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}
