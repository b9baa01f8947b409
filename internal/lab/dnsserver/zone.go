package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// defaultTTL is the TTL of a record that names none. A minute is what
// the S3 names carry on AWS's resolvers, give or take.
const defaultTTL = 60

// entry is what one name answers.
type entry struct {
	a    []netip.Addr
	aaaa []netip.Addr
	ttl  uint32
}

// zone is an immutable snapshot of the records, keyed by lower-case
// fully qualified name. A wildcard "*.example.com" is kept under
// "example.com." in wild.
type zone struct {
	exact map[string]*entry
	wild  map[string]*entry
}

// newZone checks and indexes records. Records that share a name are
// merged; the first non-zero TTL wins.
func newZone(records []scenario.Record) (*zone, error) {
	z := &zone{
		exact: map[string]*entry{},
		wild:  map[string]*entry{},
	}
	for i, r := range records {
		if r.Name == "" {
			return nil, fmt.Errorf("record %d: name missing", i)
		}
		name := canonical(r.Name)

		table := z.exact
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			table, name = z.wild, rest
			if name == "" {
				name = "."
			}
		}
		e := table[name]
		if e == nil {
			e = &entry{}
			table[name] = e
		}
		if e.ttl == 0 {
			e.ttl = r.TTL
		}

		for _, s := range r.A {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Unmap().Is4() {
				return nil, fmt.Errorf("record %s: a %q is not an IPv4 address", r.Name, s)
			}
			e.a = append(e.a, a.Unmap())
		}
		for _, s := range r.AAAA {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is6() || a.Is4In6() {
				return nil, fmt.Errorf("record %s: aaaa %q is not an IPv6 address", r.Name, s)
			}
			e.aaaa = append(e.aaaa, a)
		}
	}

	for _, table := range []map[string]*entry{z.exact, z.wild} {
		for _, e := range table {
			if e.ttl == 0 {
				e.ttl = defaultTTL
			}
		}
	}
	return z, nil
}

// find returns what name answers, or nil when the name does not exist.
// An exact record wins; otherwise the closest wildcard above the name
// answers, so "*.b.c" covers "a.b.c" and "x.a.b.c" but not "b.c".
func (z *zone) find(name string) *entry {
	name = canonical(name)
	if e := z.exact[name]; e != nil {
		return e
	}
	for name != "." {
		_, parent, _ := strings.Cut(name, ".")
		if parent == "" {
			parent = "."
		}
		if e := z.wild[parent]; e != nil {
			return e
		}
		name = parent
	}
	return nil
}

// canonical lower-cases a name and makes it fully qualified, because
// DNS names compare without regard to case or the trailing dot.
func canonical(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}
