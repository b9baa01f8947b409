package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Match says whether something in a statement holds for the request.
// The zero value is MatchUnknown: not established either way.
type Match int8

const (
	// MatchUnknown: it depends on something not known (an unknown key or
	// principal) or not supported (an operator, a policy variable).
	MatchUnknown Match = iota
	MatchNo            // it does not hold, whatever the unknowns are
	MatchYes           // it holds
)

func (m Match) String() string {
	switch m {
	case MatchNo:
		return "no"
	case MatchYes:
		return "yes"
	}
	return "unknown"
}

// Three-valued logic: an unknown part decides only when the known parts
// leave the answer open.

func and(a, b Match) Match {
	switch {
	case a == MatchNo || b == MatchNo:
		return MatchNo
	case a == MatchUnknown || b == MatchUnknown:
		return MatchUnknown
	}
	return MatchYes
}

func or(a, b Match) Match {
	switch {
	case a == MatchYes || b == MatchYes:
		return MatchYes
	case a == MatchUnknown || b == MatchUnknown:
		return MatchUnknown
	}
	return MatchNo
}

func not(a Match) Match {
	switch a {
	case MatchYes:
		return MatchNo
	case MatchNo:
		return MatchYes
	}
	return MatchUnknown
}

func matchOf(b bool) Match {
	if b {
		return MatchYes
	}
	return MatchNo
}

// globToken is one element of a compiled pattern.
type globToken struct {
	kind  byte // tokLit, tokStar, tokOne or tokVar
	r     rune // the literal
	colon bool // the wildcard may match ':'
}

const (
	tokLit  byte = iota
	tokStar      // *
	tokOne       // ?
	tokVar       // a policy variable: some string, possibly with colons
)

// compilePattern turns a pattern into tokens. With wild, * matches any run
// of characters and ? any one character; otherwise both are literal. With
// vars (Version 2012-10-17), ${*}, ${?} and ${$} stand for the literal
// character, and any other ${...} is a policy variable. Substituting
// request values is not implemented, so a variable becomes a token that
// matches anything, and the first one is returned: a pattern that fails
// to match even so fails whatever the variable holds, but a match proves
// nothing.
//
// With arn, the pattern is a Resource ARN, where AWS lets a wildcard match
// within one colon-separated segment, except that a * ending a segment may
// match beyond it; the sixth segment, the resource, may itself hold colons.
func compilePattern(p string, wild, vars, arn bool) ([]globToken, string) {
	var toks []globToken
	var variable string
	for i := 0; i < len(p); {
		if vars && strings.HasPrefix(p[i:], "${") {
			if end := strings.IndexByte(p[i:], '}'); end > 0 {
				switch inner := p[i+2 : i+end]; inner {
				case "*", "?", "$":
					toks = append(toks, globToken{kind: tokLit, r: rune(inner[0])})
				default:
					if variable == "" {
						variable = p[i : i+end+1]
					}
					toks = append(toks, globToken{kind: tokVar, colon: true})
				}
				i += end + 1
				continue
			}
		}

		r, size := utf8.DecodeRuneInString(p[i:])
		i += size
		switch {
		case wild && r == '*':
			toks = append(toks, globToken{kind: tokStar})
		case wild && r == '?':
			toks = append(toks, globToken{kind: tokOne})
		default:
			toks = append(toks, globToken{kind: tokLit, r: r})
		}
	}

	seg := 0
	for i := range toks {
		t := &toks[i]
		switch {
		case t.kind == tokLit:
			if t.r == ':' {
				seg++
			}
		case t.kind == tokVar:
			// Already matches anything.
		case !arn || seg >= 5:
			t.colon = true
		case t.kind == tokStar:
			last := i == len(toks)-1 || toks[i+1] == globToken{kind: tokLit, r: ':'}
			t.colon = last
		}
	}
	return toks, variable
}

// globMatch reports whether the tokens match all of s. It runs in time
// proportional to len(toks)*len(s), whatever the pattern.
func globMatch(toks []globToken, s string) bool {
	rs := []rune(s)
	cur := make([]bool, len(rs)+1)
	next := make([]bool, len(rs)+1)
	cur[0] = true
	for _, t := range toks {
		next[0] = (t.kind == tokStar || t.kind == tokVar) && cur[0]
		for j := 1; j <= len(rs); j++ {
			c := rs[j-1]
			switch t.kind {
			case tokStar, tokVar:
				next[j] = cur[j] || next[j-1] && (t.colon || c != ':')
			case tokOne:
				next[j] = cur[j-1] && (t.colon || c != ':')
			default:
				next[j] = cur[j-1] && c == t.r
			}
		}
		cur, next = next, cur
	}
	return cur[len(rs)]
}

// firstVariable returns the first policy variable in p, "" if none; the
// escapes ${*}, ${?} and ${$} are not variables.
func firstVariable(p string) string {
	_, v := compilePattern(p, false, true, false)
	return v
}

// patternMatch matches v against the pattern p: with wild, * and ? are
// wildcards; with fold, case is ignored.
func patternMatch(p, v string, wild, vars, fold bool) (Match, string) {
	pat := p
	if fold {
		pat, v = strings.ToLower(p), strings.ToLower(v)
	}
	toks, variable := compilePattern(pat, wild, vars, false)
	return withVariable(globMatch(toks, v), variable, p)
}

// withVariable turns a match that rests on a policy variable into Unknown.
func withVariable(matched bool, variable, pattern string) (Match, string) {
	if variable != "" && matched {
		return MatchUnknown, fmt.Sprintf("unsupported policy variable %s in %q", variable, pattern)
	}
	return matchOf(matched), ""
}

// actionMatch matches an action against an Action entry: "*", or
// service:pattern with wildcards, case-insensitively.
func actionMatch(pattern, action string) bool {
	toks, _ := compilePattern(strings.ToLower(pattern), true, false, false)
	return globMatch(toks, strings.ToLower(action))
}

// resourceMatch matches a resource ARN against a Resource entry,
// case-sensitively.
func resourceMatch(pattern, resource string, vars bool) (Match, string) {
	if pattern == "*" {
		return MatchYes, ""
	}
	toks, variable := compilePattern(pattern, true, vars, true)
	return withVariable(globMatch(toks, resource), variable, pattern)
}

// arnMatch is ArnEquals and ArnLike, which AWS treats alike: each of the
// six colon-separated parts is compared on its own, case-sensitively, and
// each may hold * and ? wildcards.
func arnMatch(pattern, value string, vars bool) (Match, string) {
	// A variable may hold colons, so look for one before splitting.
	if vars {
		if v := firstVariable(pattern); v != "" {
			return MatchUnknown, fmt.Sprintf("unsupported policy variable %s in %q", v, pattern)
		}
	}
	pp := strings.SplitN(pattern, ":", 6)
	if len(pp) != 6 || pp[0] != "arn" {
		return MatchUnknown, fmt.Sprintf("unsupported ARN pattern %q (not six colon-separated parts)",
			pattern)
	}
	vp := strings.SplitN(value, ":", 6)
	if len(vp) != 6 {
		return MatchNo, ""
	}
	for i := range pp {
		toks, _ := compilePattern(pp[i], true, vars, false)
		if !globMatch(toks, vp[i]) {
			return MatchNo, ""
		}
	}
	return MatchYes, ""
}

// quoteList renders values as ["a", "b"].
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
