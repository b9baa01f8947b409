package ec2api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// params are a request's query parameters. EC2 flattens lists into
// numbered keys: RouteTableId.1, RouteTableId.2, Filter.1.Name,
// Filter.1.Value.1 and so on, counting from 1.
type params map[string][]string

func (p params) get(key string) string {
	if v := p[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// list returns the values of name.1, name.2, ... in index order. Gaps
// in the numbering are tolerated, as EC2 does.
func (p params) list(name string) []string {
	type item struct {
		n int
		v string
	}
	var items []item
	for k, v := range p {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok || len(v) == 0 {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue // a deeper key such as Filter.1.Name
		}
		items = append(items, item{n, v[0]})
	}
	slices.SortFunc(items, func(a, b item) int { return a.n - b.n })

	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// filter is one Filter.N: an item passes when any of its values for
// Name equals any of Values.
type filter struct {
	Name   string
	Values []string
}

// filterKeys maps each filter name an action accepts to the values an
// item has for it.
type filterKeys[T any] map[string]func(T) []string

// filters reads Filter.N.Name and Filter.N.Value.M and checks each name
// against the ones the action knows.
func filters[T any](p params, keys filterKeys[T]) ([]filter, error) {
	var out []filter
	for i := 1; ; i++ {
		prefix := "Filter." + strconv.Itoa(i)
		name := p.get(prefix + ".Name")
		if name == "" {
			break
		}
		if _, ok := keys[name]; !ok {
			return nil, apiErrorf(http.StatusBadRequest,
				"InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		values := p.list(prefix + ".Value")
		if len(values) == 0 {
			return nil, apiErrorf(http.StatusBadRequest,
				"InvalidParameterValue", "The filter '%s' has no values", name)
		}
		out = append(out, filter{Name: name, Values: values})
	}
	return out, nil
}

// matches reports whether item passes every filter. Values compare
// exactly.
//
// EC2 also accepts * and ? wildcards in filter values; the agent never
// sends them, so they are not implemented and match only themselves.
func matches[T any](item T, fs []filter, keys filterKeys[T]) bool {
	for _, f := range fs {
		have := keys[f.Name](item)
		if !slices.ContainsFunc(f.Values, func(v string) bool {
			return slices.Contains(have, v)
		}) {
			return false
		}
	}
	return true
}

// pick returns the items whose ids are listed, in the scenario's order,
// or every item when ids is empty. An id that does not exist is an
// error, as on EC2, not an empty answer.
func pick[T any](items []T, ids []string, id func(T) string, notFound, what string) ([]T, error) {
	if len(ids) == 0 {
		return items, nil
	}
	for _, want := range ids {
		if !slices.ContainsFunc(items, func(it T) bool { return id(it) == want }) {
			return nil, apiErrorf(http.StatusBadRequest,
				notFound, "The %s ID '%s' does not exist", what, want)
		}
	}
	var out []T
	for _, it := range items {
		if slices.Contains(ids, id(it)) {
			out = append(out, it)
		}
	}
	return out, nil
}
