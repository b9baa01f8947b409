package policy

import (
	"fmt"
	"strings"
)

// caller is the request's principal taken apart.
type caller struct {
	raw       string
	arn       bool // raw is an ARN; otherwise a service principal name
	partition string
	account   string
	root      bool   // an account's root user
	session   bool   // an assumed-role session
	role      string // the role's name, for roles and sessions
}

func parseCaller(s string) caller {
	c := caller{raw: s}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return c
	}
	c.arn, c.partition, c.account = true, parts[1], parts[4]
	service, res := parts[2], parts[5]
	switch {
	case service == "iam" && res == "root":
		c.root = true
	case service == "iam" && strings.HasPrefix(res, "role/"):
		c.role = res[strings.LastIndexByte(res, '/')+1:]
	case service == "sts" && strings.HasPrefix(res, "assumed-role/"):
		if f := strings.Split(res, "/"); len(f) >= 3 {
			c.session, c.role = true, f[1]
		}
	}
	return c
}

// identity is one of the identities a request is made as. AWS may check
// a principal as each of them: its account, then (for a session) its role,
// then itself.
type identity int8

const (
	idAccount identity = iota
	idSelf
	idRoleOrSession // an assumed-role session, named by its role or itself
)

func (c caller) identities() []identity {
	switch {
	case !c.arn:
		return []identity{idSelf}
	case c.root:
		return []identity{idAccount}
	case c.session:
		return []identity{idAccount, idRoleOrSession}
	}
	return []identity{idAccount, idSelf}
}

// listed says whether a Principal element names the caller as id, and
// notes any entry it cannot judge.
func listed(p *Principal, c caller, id identity, notes *[]string) Match {
	if p.All {
		return MatchYes
	}
	m := MatchNo
	for _, e := range p.AWS {
		m = or(m, awsEntry(e, c, id, notes))
	}
	for _, e := range p.Service {
		m = or(m, matchOf(!c.arn && strings.EqualFold(e, c.raw)))
	}

	// A canonical user id stands for an account and a federated provider
	// hands out sessions, neither of which an ARN reveals.
	others := map[string][]string{"CanonicalUser": p.CanonicalUser, "Federated": p.Federated}
	for _, kind := range []string{"CanonicalUser", "Federated"} {
		for _, e := range others[kind] {
			if !c.arn {
				continue
			}
			m = or(m, MatchUnknown)
			addNote(notes, fmt.Sprintf("unsupported %s principal %q "+
				"(it cannot be compared with an ARN)", kind, e))
		}
	}
	return m
}

func addNote(notes *[]string, n string) {
	for _, have := range *notes {
		if have == n {
			return
		}
	}
	*notes = append(*notes, n)
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// awsEntry matches one entry of a Principal's AWS list. An account names
// every principal of the account (whose own IAM policies must then allow
// the request too); a role names its sessions as well; any other ARN
// names exactly itself.
func awsEntry(e string, c caller, id identity, notes *[]string) Match {
	if e == "*" {
		return MatchYes
	}
	if isAccountID(e) {
		return matchOf(id == idAccount && c.arn && c.account == e)
	}

	parts := strings.SplitN(e, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		// Among these are the unique ids (AROA..., AIDA...) AWS leaves in
		// a policy when a named role or user is deleted.
		addNote(notes, fmt.Sprintf("unsupported principal %q (neither an account id nor an ARN)", e))
		return MatchUnknown
	}
	if strings.ContainsAny(e, "*?") {
		addNote(notes, fmt.Sprintf("unsupported wildcard in principal %q "+
			"(AWS matches principal ARNs exactly)", e))
		return MatchUnknown
	}
	if !c.arn {
		return MatchNo
	}

	partition, service, account, res := parts[1], parts[2], parts[4], parts[5]
	same := partition == c.partition && account == c.account
	switch {
	case service == "iam" && res == "root":
		return matchOf(id == idAccount && same)
	case id == idRoleOrSession && service == "iam" && strings.HasPrefix(res, "role/"):
		// A session's ARN drops the role's path: compare names.
		return matchOf(same && res[strings.LastIndexByte(res, '/')+1:] == c.role)
	}
	return matchOf(id != idAccount && e == c.raw)
}

// renderPrincipal renders a Principal element for a reason.
func renderPrincipal(p *Principal) string {
	if p.All {
		return `"*"`
	}
	var parts []string
	for _, kv := range []struct {
		name   string
		values []string
	}{
		{"AWS", p.AWS}, {"Service", p.Service},
		{"CanonicalUser", p.CanonicalUser}, {"Federated", p.Federated},
	} {
		if len(kv.values) > 0 {
			parts = append(parts, fmt.Sprintf("%q: %s", kv.name, quoteList(kv.values)))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (p *Principal) everyone() bool {
	if p.All {
		return true
	}
	for _, e := range p.AWS {
		if e == "*" {
			return true
		}
	}
	return false
}

// evalPrincipal decides the statement's Principal or NotPrincipal.
//
// NotPrincipal (AWS): the statement applies to every principal except
// those listed. AWS may check a request as its account, then its role,
// then its session, so a principal is excepted for certain only when the
// account and the principal itself (or, for a session, its role) are both
// listed. Listing an account does not except the account's other
// principals; listing a principal without its account leaves it to how
// the service checks, so the result is then Unknown.
func evalPrincipal(st Statement, c caller) (Match, string) {
	p := st.Principal
	if p == nil {
		return MatchYes, "the statement names no principal"
	}
	elem := "Principal " + renderPrincipal(p)
	if st.NotPrincipal {
		elem = "NotPrincipal " + renderPrincipal(p)
	}

	if p.everyone() {
		if st.NotPrincipal {
			return MatchNo, elem + " excepts every principal"
		}
		return MatchYes, elem + " covers every principal"
	}
	if c.raw == "" {
		return MatchUnknown, "the request's principal is not known, and " + elem +
			" names specific principals"
	}

	// The identities run from the account to the principal itself.
	var notes []string
	anyListed, allListed, self := MatchNo, MatchYes, MatchNo
	for _, id := range c.identities() {
		self = listed(p, c, id, &notes)
		anyListed, allListed = or(anyListed, self), and(allListed, self)
	}
	who := "the principal " + c.raw
	undecided := func(verb string) string {
		return "whether " + who + " is " + verb + " " + elem + " cannot be decided: " +
			strings.Join(notes, "; ")
	}

	if !st.NotPrincipal {
		switch anyListed {
		case MatchYes:
			return MatchYes, who + " is in " + elem
		case MatchNo:
			return MatchNo, who + " is not in " + elem
		}
		return MatchUnknown, undecided("in")
	}

	switch {
	case allListed == MatchYes:
		return MatchNo, who + " is excepted by " + elem
	case self == MatchNo:
		return MatchYes, who + " is not excepted by " + elem
	case len(notes) > 0:
		return MatchUnknown, undecided("excepted by")
	}
	return MatchUnknown, elem + " names " + c.raw + " but not its account " +
		"(AWS may check the account too), so whether it is excepted is not established"
}
