package ec2api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// GetManagedPrefixListEntries pages: EC2 accepts MaxResults from 1 to
// 100. A request without it gets the largest page here; EC2 does not
// document its own default.
const (
	minEntriesPage     = 1
	maxEntriesPage     = 100
	defaultEntriesPage = maxEntriesPage
)

// awsOwner is the owner EC2 reports for AWS-managed prefix lists such as
// com.amazonaws.us-east-1.s3.
const awsOwner = "AWS"

type managedPrefixListsResponse struct {
	envelope
	PrefixLists []managedPrefixListXML `xml:"prefixListSet>item"`
}

type managedPrefixListXML struct {
	ID            string `xml:"prefixListId"`
	Name          string `xml:"prefixListName"`
	AddressFamily string `xml:"addressFamily"`
	State         string `xml:"state"`
	ARN           string `xml:"prefixListArn"`
	OwnerID       string `xml:"ownerId"`
}

type prefixListEntriesResponse struct {
	envelope
	Entries   []entryXML `xml:"entrySet>item"`
	NextToken string     `xml:"nextToken,omitempty"`
}

type entryXML struct {
	CIDR string `xml:"cidr"`
}

type prefixListsResponse struct {
	envelope
	PrefixLists []prefixListXML `xml:"prefixListSet>item"`
}

type prefixListXML struct {
	ID    string   `xml:"prefixListId"`
	Name  string   `xml:"prefixListName"`
	CIDRs []string `xml:"cidrSet>item"`
}

func prefixListFilters(sc *scenario.Scenario) filterKeys[scenario.PrefixList] {
	one := func(v string) []string { return []string{v} }
	return filterKeys[scenario.PrefixList]{
		"prefix-list-id":   func(pl scenario.PrefixList) []string { return one(pl.ID) },
		"prefix-list-name": func(pl scenario.PrefixList) []string { return one(pl.Name) },
		"owner-id":         func(pl scenario.PrefixList) []string { return one(owner(sc, pl)) },
	}
}

// owner tells AWS-managed lists from the account's own by their name.
func owner(sc *scenario.Scenario, pl scenario.PrefixList) string {
	if strings.HasPrefix(pl.Name, "com.amazonaws.") {
		return awsOwner
	}
	return sc.AccountID
}

// The list calls below answer everything in one page and ignore
// MaxResults: the agent names the lists it wants, a handful at most.
// Only GetManagedPrefixListEntries pages, because there the agent must
// follow NextToken.

func describeManagedPrefixLists(sc *scenario.Scenario, p params) (response, error) {
	keys := prefixListFilters(sc)
	fs, err := filters(p, keys)
	if err != nil {
		return nil, err
	}
	lists, err := pickPrefixLists(sc.PrefixLists, p.list("PrefixListId"))
	if err != nil {
		return nil, err
	}

	out := &managedPrefixListsResponse{}
	for _, pl := range lists {
		if !matches(pl, fs, keys) {
			continue
		}
		account := owner(sc, pl)
		if account == awsOwner {
			account = "aws" // as it appears in the ARN
		}
		out.PrefixLists = append(out.PrefixLists, managedPrefixListXML{
			ID:            pl.ID,
			Name:          pl.Name,
			AddressFamily: addressFamily(pl),
			State:         "create-complete",
			ARN:           fmt.Sprintf("arn:aws:ec2:%s:%s:prefix-list/%s", sc.Region, account, pl.ID),
			OwnerID:       owner(sc, pl),
		})
	}
	return out, nil
}

// describePrefixLists is the older call: it knows only AWS-managed
// lists, and returns their CIDRs inline.
func describePrefixLists(sc *scenario.Scenario, p params) (response, error) {
	var awsLists []scenario.PrefixList
	for _, pl := range sc.PrefixLists {
		if owner(sc, pl) == awsOwner {
			awsLists = append(awsLists, pl)
		}
	}

	keys := prefixListFilters(sc)
	fs, err := filters(p, keys)
	if err != nil {
		return nil, err
	}
	lists, err := pickPrefixLists(awsLists, p.list("PrefixListId"))
	if err != nil {
		return nil, err
	}

	out := &prefixListsResponse{}
	for _, pl := range lists {
		if matches(pl, fs, keys) {
			out.PrefixLists = append(out.PrefixLists, prefixListXML{
				ID:    pl.ID,
				Name:  pl.Name,
				CIDRs: pl.CIDRs,
			})
		}
	}
	return out, nil
}

func getManagedPrefixListEntries(sc *scenario.Scenario, p params) (response, error) {
	id := p.get("PrefixListId")
	if id == "" {
		return nil, apiErrorf(http.StatusBadRequest,
			"MissingParameter", "The request must contain the parameter PrefixListId")
	}
	lists, err := pickPrefixLists(sc.PrefixLists, []string{id})
	if err != nil {
		return nil, err
	}
	cidrs := lists[0].CIDRs

	size := defaultEntriesPage
	if v := p.get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minEntriesPage || n > maxEntriesPage {
			return nil, apiErrorf(http.StatusBadRequest, "InvalidParameterValue",
				"Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.",
				v, minEntriesPage, maxEntriesPage)
		}
		size = n
	}

	start := 0
	if tok := p.get("NextToken"); tok != "" {
		start, err = readToken(tok, id, cidrs)
		if err != nil {
			return nil, err
		}
	}

	end := min(start+size, len(cidrs))
	out := &prefixListEntriesResponse{}
	for _, c := range cidrs[start:end] {
		out.Entries = append(out.Entries, entryXML{CIDR: c})
	}
	if end < len(cidrs) {
		out.NextToken = makeToken(id, end, cidrs)
	}
	return out, nil
}

func pickPrefixLists(lists []scenario.PrefixList, ids []string) ([]scenario.PrefixList, error) {
	return pick(lists, ids,
		func(pl scenario.PrefixList) string { return pl.ID },
		"InvalidPrefixListID.NotFound", "prefix list")
}

func addressFamily(pl scenario.PrefixList) string {
	if len(pl.CIDRs) > 0 {
		if p, err := netip.ParsePrefix(pl.CIDRs[0]); err == nil && p.Addr().Is6() {
			return "IPv6"
		}
	}
	return "IPv4"
}

// A page token names the list, the offset of the next entry and a
// fingerprint of the entries. When the lab changes a list between pages
// the token stops being valid, as a real token for an older version of
// the list would, rather than silently skipping or repeating entries.

func makeToken(id string, offset int, cidrs []string) string {
	raw := id + "|" + strconv.Itoa(offset) + "|" + fingerprint(cidrs)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func readToken(tok, id string, cidrs []string) (int, error) {
	bad := apiErrorf(http.StatusBadRequest,
		"InvalidPaginationToken", "The pagination token %q is invalid or expired.", tok)

	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[0] != id || parts[2] != fingerprint(cidrs) {
		return 0, bad
	}
	offset, err := strconv.Atoi(parts[1])
	if err != nil || offset < 0 || offset > len(cidrs) {
		return 0, bad
	}
	return offset, nil
}

func fingerprint(cidrs []string) string {
	h := sha256.Sum256([]byte(strings.Join(cidrs, ",")))
	return hex.EncodeToString(h[:8])
}
