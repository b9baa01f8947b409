package policy

import (
	"fmt"
	"strings"
)

// Decision is what one policy says about a request.
// The zero value is Unknown.
type Decision int8

const (
	// Unknown: a statement that might deny or might allow depends on
	// something not known or not supported, and no certain deny decides.
	Unknown      Decision = iota
	Allow                 // a statement allows and none denies
	ExplicitDeny          // a statement denies the request
	ImplicitDeny          // no statement denies and none allows
)

// Result is a policy's decision on a request and the reasons for it.
type Result struct {
	Decision Decision

	// Deciding are the statements the decision rests on: the denying
	// statements for ExplicitDeny, the allowing ones for Allow, the
	// Allow statements (none of which applies) for ImplicitDeny, and for
	// Unknown the deny statements that might apply or, when there are
	// none, the allow statements that might.
	Deciding []StatementResult

	// Statements are every statement's outcome, in policy order.
	Statements []StatementResult
}

// StatementResult is how one statement judged the request.
type StatementResult struct {
	Index  int    // position in the policy's Statement list, from 0
	Sid    string // "" when the statement has none
	Effect Effect
	Match  Match // whether the statement applies to the request

	// Reason is one sentence naming the statement, what it does to the
	// action, and why: the failing parts when it does not apply, the
	// undecidable ones when unknown, the conditions when it applies.
	Reason string
}

// Name names the statement: statement "Sid", or Statement[i] when it has
// no Sid.
func (s StatementResult) Name() string {
	if s.Sid != "" {
		return fmt.Sprintf("statement %q", s.Sid)
	}
	return fmt.Sprintf("Statement[%d]", s.Index)
}

// Evaluate decides req against p, as AWS decides one policy: an explicit
// deny wins over any allow; with no deny, an allow allows; with neither,
// the request is implicitly denied. A deny statement that might apply
// makes the decision Unknown unless a deny is certain; an allow statement
// that might apply does so unless an allow is certain. A nil policy has no
// statements: ImplicitDeny.
//
// A statement applies when its principal, action and resource match and
// every condition holds; a part that does not match settles it, whatever
// the parts that cannot be decided.
func Evaluate(p *Policy, req Request) Result {
	var r Result
	var stmts []Statement
	vars := false
	if p != nil {
		stmts, vars = p.Statements, p.Version == Version2012
	}

	c := parseCaller(req.Principal)
	for i, st := range stmts {
		r.Statements = append(r.Statements, evalStatement(i, st, req, c, vars))
	}

	pick := func(e Effect, m Match) []StatementResult {
		var out []StatementResult
		for _, s := range r.Statements {
			if s.Effect == e && s.Match == m {
				out = append(out, s)
			}
		}
		return out
	}
	switch {
	case len(pick(EffectDeny, MatchYes)) > 0:
		r.Decision, r.Deciding = ExplicitDeny, pick(EffectDeny, MatchYes)
	case len(pick(EffectDeny, MatchUnknown)) > 0:
		r.Decision, r.Deciding = Unknown, pick(EffectDeny, MatchUnknown)
	case len(pick(EffectAllow, MatchYes)) > 0:
		r.Decision, r.Deciding = Allow, pick(EffectAllow, MatchYes)
	case len(pick(EffectAllow, MatchUnknown)) > 0:
		r.Decision, r.Deciding = Unknown, pick(EffectAllow, MatchUnknown)
	default:
		r.Decision, r.Deciding = ImplicitDeny, pick(EffectAllow, MatchNo)
	}
	return r
}

// part is one element of a statement, judged.
type part struct {
	m   Match
	why string

	// When the statement applies, its conditions and its Not elements
	// (which apply by what they do not list) say why.
	telling bool
}

func evalStatement(i int, st Statement, req Request, c caller, vars bool) StatementResult {
	var parts []part
	m, why := evalPrincipal(st, c)
	parts = append(parts, part{m: m, why: why, telling: st.NotPrincipal})
	m, why = evalAction(st, req.Action)
	parts = append(parts, part{m: m, why: why, telling: st.NotAction})
	m, why = evalResource(st, req.Resource, vars)
	parts = append(parts, part{m: m, why: why, telling: st.NotResource})
	for _, cond := range st.Conditions {
		m, why := evalCondition(cond, req.Context, vars)
		parts = append(parts, part{m: m, why: why, telling: true})
	}

	res := StatementResult{Index: i, Sid: st.Sid, Effect: st.Effect, Match: MatchYes}
	for _, p := range parts {
		res.Match = and(res.Match, p.m)
	}

	// Say only what settled the outcome: the parts that fail, or those
	// that cannot be decided, or the telling ones when it applies.
	var whys []string
	for _, p := range parts {
		if p.m == res.Match && (res.Match != MatchYes || p.telling) {
			whys = append(whys, p.why)
		}
	}
	if len(whys) == 0 {
		for _, p := range parts {
			whys = append(whys, p.why)
		}
		whys[len(whys)-1] += ", and the statement has no condition"
	}

	verb := map[Match]string{
		MatchYes:     "allows",
		MatchNo:      "does not allow",
		MatchUnknown: "might allow",
	}
	if st.Effect == EffectDeny {
		verb = map[Match]string{
			MatchYes:     "denies",
			MatchNo:      "does not deny",
			MatchUnknown: "might deny",
		}
	}
	res.Reason = fmt.Sprintf("%s %s %s: %s", res.Name(), verb[res.Match], req.Action,
		strings.Join(whys, "; "))
	return res
}

// evalAction decides Action or NotAction. NotAction (AWS): the statement
// applies to every action except those listed, including actions of other
// services.
func evalAction(st Statement, action string) (Match, string) {
	in := false
	for _, a := range st.Actions {
		in = in || actionMatch(a, action)
	}
	list := quoteList(st.Actions)
	switch {
	case st.NotAction && in:
		return MatchNo, action + " is excluded by NotAction " + list
	case st.NotAction:
		return MatchYes, action + " is not in NotAction " + list
	case in:
		return MatchYes, action + " matches Action " + list
	}
	return MatchNo, action + " is not in Action " + list
}

// evalResource decides Resource or NotResource. A statement with neither
// (allowed in some endpoint policies) covers every resource.
func evalResource(st Statement, resource string, vars bool) (Match, string) {
	if st.Resources == nil {
		return MatchYes, "the statement names no resource"
	}
	in := MatchNo
	var notes []string
	for _, pat := range st.Resources {
		m, note := resourceMatch(pat, resource, vars)
		if note != "" {
			notes = append(notes, note)
		}
		in = or(in, m)
	}

	elem := "Resource " + quoteList(st.Resources)
	if st.NotResource {
		elem = "NotResource " + quoteList(st.Resources)
		in = not(in)
	}
	switch {
	case in == MatchUnknown:
		return in, "whether " + resource + " is in " + elem + " cannot be decided: " +
			strings.Join(notes, "; ")
	case in == MatchYes && st.NotResource:
		return in, resource + " is not in " + elem
	case in == MatchYes:
		return in, resource + " matches " + elem
	case st.NotResource:
		return in, resource + " is excluded by " + elem
	}
	return in, resource + " is not in " + elem
}

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case ExplicitDeny:
		return "explicit deny"
	case ImplicitDeny:
		return "implicit deny"
	}
	return "unknown"
}

// Denied reports whether the policy certainly refuses the request, even
// when the decision is Unknown: no statement allows it or might.
func (r Result) Denied() bool {
	switch r.Decision {
	case ExplicitDeny, ImplicitDeny:
		return true
	case Allow:
		return false
	}
	for _, s := range r.Statements {
		if s.Effect == EffectAllow && s.Match != MatchNo {
			return false
		}
	}
	return true
}

// Explain says the decision and its reasons in one paragraph.
func (r Result) Explain() string {
	var whys []string
	for _, s := range r.Deciding {
		whys = append(whys, s.Reason)
	}
	head := r.Decision.String()
	switch {
	case r.Decision == ImplicitDeny && len(whys) == 0:
		return head + ": the policy has no Allow statement"
	case r.Decision == ImplicitDeny:
		head += ": no statement allows the request"
	}
	return head + ": " + strings.Join(whys, "; ")
}
