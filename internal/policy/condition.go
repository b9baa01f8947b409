package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// setOp is the set prefix of a condition operator.
type setOp int8

const (
	setNone      setOp = iota
	setAnyValue        // ForAnyValue:
	setAllValues       // ForAllValues:
)

// operator is a condition operator taken apart.
type operator struct {
	set      setOp
	base     string // like "StringEquals", without prefix and IfExists
	ifExists bool
	info     *opInfo // nil: not an operator this package knows
}

// opInfo describes a base operator. A negated operator (StringNotEquals)
// holds the match of its positive twin (StringEquals) and inverts it.
type opInfo struct {
	negated bool

	// match compares one policy value with one request value.
	match func(policyValue, value string, vars bool) (Match, string)

	// check returns why a policy value is malformed, "" if it is not.
	check func(policyValue string) string

	// unsupported, when set, says why the operator is recognised but
	// not evaluated: every condition using it is Unknown.
	unsupported string
}

const (
	numericUnsupported = "numeric comparisons are not implemented"
	dateUnsupported    = "date comparisons are not implemented"
)

// A known shortcoming: Numeric and Date operators are recognised but not
// evaluated, because none of the conditions S3 endpoint restrictions use
// needs them and comparing AWS's number and date forms needs care; a
// statement using them is Unknown rather than guessed.
var operators = map[string]opInfo{
	"StringEquals":              {match: stringEquals},
	"StringNotEquals":           {match: stringEquals, negated: true},
	"StringEqualsIgnoreCase":    {match: stringEqualsFold},
	"StringNotEqualsIgnoreCase": {match: stringEqualsFold, negated: true},
	"StringLike":                {match: stringLike},
	"StringNotLike":             {match: stringLike, negated: true},
	"ArnEquals":                 {match: arnMatch},
	"ArnLike":                   {match: arnMatch},
	"ArnNotEquals":              {match: arnMatch, negated: true},
	"ArnNotLike":                {match: arnMatch, negated: true},
	"IpAddress":                 {match: ipMatch, check: checkIP},
	"NotIpAddress":              {match: ipMatch, check: checkIP, negated: true},
	"Bool":                      {match: boolMatch, check: checkBool},
	"Null":                      {check: checkBool},

	"NumericEquals":            {unsupported: numericUnsupported},
	"NumericNotEquals":         {unsupported: numericUnsupported},
	"NumericLessThan":          {unsupported: numericUnsupported},
	"NumericLessThanEquals":    {unsupported: numericUnsupported},
	"NumericGreaterThan":       {unsupported: numericUnsupported},
	"NumericGreaterThanEquals": {unsupported: numericUnsupported},
	"DateEquals":               {unsupported: dateUnsupported},
	"DateNotEquals":            {unsupported: dateUnsupported},
	"DateLessThan":             {unsupported: dateUnsupported},
	"DateLessThanEquals":       {unsupported: dateUnsupported},
	"DateGreaterThan":          {unsupported: dateUnsupported},
	"DateGreaterThanEquals":    {unsupported: dateUnsupported},
	"BinaryEquals":             {unsupported: "binary comparisons are not implemented"},
}

// parseOperator takes an operator name apart. An unknown name is not an
// error here: the statements using it evaluate as Unknown.
func parseOperator(name string) (operator, error) {
	var op operator
	rest := name
	if r, ok := strings.CutPrefix(rest, "ForAnyValue:"); ok {
		op.set, rest = setAnyValue, r
	} else if r, ok := strings.CutPrefix(rest, "ForAllValues:"); ok {
		op.set, rest = setAllValues, r
	}
	if r, ok := strings.CutSuffix(rest, "IfExists"); ok && r != "" {
		op.ifExists, rest = true, r
	}
	op.base = rest

	if op.base == "Null" && op.ifExists {
		// Null already tests for the key's presence.
		return op, errors.New("Null has no IfExists form")
	}
	if info, ok := operators[op.base]; ok {
		op.info = &info
	}
	return op, nil
}

// checkValue returns why a policy value is malformed for op, "" if not.
func (op operator) checkValue(v string) string {
	if op.info == nil || op.info.check == nil {
		return ""
	}
	return op.info.check(v)
}

func stringEquals(p, v string, vars bool) (Match, string) {
	return patternMatch(p, v, false, vars, false)
}

func stringEqualsFold(p, v string, vars bool) (Match, string) {
	return patternMatch(p, v, false, vars, true)
}

func stringLike(p, v string, vars bool) (Match, string) {
	return patternMatch(p, v, true, vars, false)
}

// ipMatch compares an address with an address or CIDR, IPv4 or IPv6; an
// IPv4-mapped IPv6 address counts as its IPv4 address. A request value
// that is not an address is in no range.
func ipMatch(p, v string, _ bool) (Match, string) {
	prefix, ok := parseIPValue(p)
	if !ok {
		return MatchUnknown, fmt.Sprintf("unsupported IP value %q", p)
	}
	addr, err := netip.ParseAddr(v)
	if err != nil {
		return MatchNo, ""
	}
	return matchOf(prefix.Contains(addr.Unmap().WithZone(""))), ""
}

func parseIPValue(s string) (netip.Prefix, bool) {
	var prefix netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return prefix, false
		}
		prefix = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return prefix, false
		}
		prefix = netip.PrefixFrom(a, a.BitLen())
	}

	if a := prefix.Addr(); a.Is4In6() && prefix.Bits() >= 96 {
		prefix = netip.PrefixFrom(a.Unmap(), prefix.Bits()-96)
	}
	return prefix.Masked(), true
}

func checkIP(p string) string {
	if _, ok := parseIPValue(p); !ok {
		return "is not an IP address or CIDR"
	}
	return ""
}

func boolMatch(p, v string, _ bool) (Match, string) {
	return matchOf(strings.EqualFold(p, v)), ""
}

func checkBool(p string) string {
	if !strings.EqualFold(p, "true") && !strings.EqualFold(p, "false") {
		return "is not true or false"
	}
	return ""
}

// absentWhy says what the absence of a key tells, for the keys whose
// absence has a meaning.
var absentWhy = map[string]string{
	"aws:sourcevpce":  "the request did not come through a VPC endpoint",
	"aws:sourcevpc":   "the request did not come through a VPC endpoint",
	"aws:vpcsourceip": "the request did not come through a VPC endpoint",
	"aws:sourceip":    "requests through a VPC endpoint do not carry it",
}

func describeKey(key string, values []string, state keyState) string {
	switch state {
	case keyUnknown:
		return key + " is not known"
	case keyAbsent:
		if why := absentWhy[strings.ToLower(key)]; why != "" {
			return key + " is absent (" + why + ")"
		}
		return key + " is absent from the request"
	}
	switch len(values) {
	case 0:
		return key + " is present with no values"
	case 1:
		return fmt.Sprintf("%s is %q", key, values[0])
	}
	return key + " is " + quoteList(values)
}

func truth(m Match) string {
	if m == MatchYes {
		return "true"
	}
	return "false"
}

// evalCondition decides one condition and says why.
//
// The AWS semantics it relies on:
//   - A key absent from the request makes a plain operator false, and a
//     negated one (StringNotEquals, ArnNotLike, NotIpAddress...) true.
//   - With IfExists, an absent key makes the condition true; a present
//     key is compared as without IfExists.
//   - ForAllValues: every request value must match; true when the key is
//     absent or has no values. ForAnyValue: some request value must
//     match; false when the key is absent (true with IfExists).
//   - Several policy values for one key are ORed; for a negated operator
//     the request value must match none of them (NOR).
//   - Null "true" holds when the key is absent, "false" when present.
//   - A key with several values needs a set prefix; without one AWS's
//     behaviour is not documented, so the condition is Unknown.
func evalCondition(c Condition, ctx Context, vars bool) (Match, string) {
	op := c.op
	if op.info == nil {
		return MatchUnknown, fmt.Sprintf("unsupported condition operator %q on %s",
			c.Operator, c.Key)
	}
	if op.info.unsupported != "" {
		return MatchUnknown, fmt.Sprintf("unsupported condition operator %q on %s (%s)",
			c.Operator, c.Key, op.info.unsupported)
	}

	values, state := ctx.lookup(c.Key)
	key := describeKey(c.Key, values, state)
	against := fmt.Sprintf("%s against %s", c.Operator, quoteList(c.Values))
	if state == keyUnknown {
		return MatchUnknown, key + ", so " + against + " cannot be decided"
	}

	if op.base == "Null" {
		if op.set != setNone {
			return MatchUnknown, fmt.Sprintf("unsupported condition operator %q on %s "+
				"(a set prefix on Null)", c.Operator, c.Key)
		}
		isNull := state == keyAbsent || len(values) == 0
		m := MatchNo
		for _, p := range c.Values {
			m = or(m, matchOf(strings.EqualFold(p, "true") == isNull))
		}
		return m, key + ", and " + against + " is " + truth(m)
	}

	if state == keyAbsent {
		var m Match
		switch {
		case op.ifExists, op.set == setAllValues:
			m = MatchYes
		case op.set == setAnyValue:
			m = MatchNo
		default:
			m = matchOf(op.info.negated)
		}
		return m, key + ", and " + against + " is " + truth(m) + " for a missing key"
	}

	var note string
	single := func(v string) Match {
		m := MatchNo
		for _, p := range c.Values {
			pm, n := op.info.match(p, v, vars)
			if n != "" && note == "" {
				note = n
			}
			m = or(m, pm)
		}
		if op.info.negated {
			m = not(m)
		}
		return m
	}

	var m Match
	switch op.set {
	case setNone:
		switch len(values) {
		case 0:
			m = matchOf(op.info.negated)
		case 1:
			m = single(values[0])
		default:
			m = MatchUnknown
			note = fmt.Sprintf("unsupported use of %s, which has %d values, "+
				"without ForAnyValue: or ForAllValues:", c.Key, len(values))
		}
	case setAnyValue:
		m = MatchNo
		for _, v := range values {
			m = or(m, single(v))
		}
	case setAllValues:
		m = MatchYes
		for _, v := range values {
			m = and(m, single(v))
		}
	}

	if m == MatchUnknown {
		return m, key + ", and " + against + " cannot be decided: " + note
	}
	return m, key + ", and " + against + " is " + truth(m)
}
