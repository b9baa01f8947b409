package policy

import "strings"

// Request is the one request a policy is decided against.
type Request struct {
	Action   string // like "s3:PutObject"; compared case-insensitively
	Resource string // like "arn:aws:s3:::bucket/key"; compared case-sensitively

	// Principal is who makes the request: an ARN (for an instance role,
	// arn:aws:sts::ACCOUNT:assumed-role/ROLE/i-0123456789abcdef0), a
	// service principal name, or "" when it is not known. An unknown
	// principal matches only Principal "*"; anything more specific makes
	// the statement Unknown.
	Principal string

	Context Context // the condition keys the request carries
}

// Context holds the condition keys a request carries. A key never set is
// absent: the request does not carry it, which is a fact (AWS sets
// aws:SourceVpce, aws:SourceVpc and aws:VpcSourceIp only on requests
// through a VPC endpoint, and aws:SourceIp only on requests that do not use
// one), so set every key the request does carry. A key whose value the
// caller cannot tell, like the public address a NAT gateway gives it, is
// marked with SetUnknown, and every condition on it is then Unknown.
//
// Key names are case-insensitive, values case-sensitive. The zero value is
// an empty context; a Context copied shares its keys with the original.
type Context struct {
	keys map[string]contextValue
}

type contextValue struct {
	values  []string
	unknown bool
}

// Set records that the request carries key with these values; most keys
// have one. A key set with no values is present with an empty set.
func (c *Context) Set(key string, values ...string) {
	c.put(key, contextValue{values: append([]string(nil), values...)})
}

// SetUnknown records that whether the request carries key, and with what
// value, is not known.
func (c *Context) SetUnknown(key string) {
	c.put(key, contextValue{unknown: true})
}

func (c *Context) put(key string, v contextValue) {
	if c.keys == nil {
		c.keys = map[string]contextValue{}
	}
	c.keys[strings.ToLower(key)] = v
}

// keyState says what a context knows of a key.
type keyState int8

const (
	keyAbsent keyState = iota
	keyPresent
	keyUnknown
)

func (c Context) lookup(key string) ([]string, keyState) {
	v, ok := c.keys[strings.ToLower(key)]
	switch {
	case !ok:
		return nil, keyAbsent
	case v.unknown:
		return nil, keyUnknown
	}
	return v.values, keyPresent
}
