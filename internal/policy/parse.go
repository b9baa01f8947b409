package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// maxPolicyBytes bounds the documents Parse reads. S3 caps a bucket policy
// at 20 KB and a VPC endpoint policy at 20,480 characters, so three times
// that leaves room for pretty-printing and still refuses anything that is
// not a policy AWS would hold.
const maxPolicyBytes = 64 << 10

// SyntaxError reports a policy document that cannot be read, and where.
type SyntaxError struct {
	// Path is the JSON path of the offending element, like
	// Statement[1].Condition.StringEquals; "" for the document itself.
	Path string
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	if e.Path == "" {
		return "policy: " + e.Msg
	}
	return "policy: " + e.Path + ": " + e.Msg
}

func syntaxErr(path, format string, args ...any) *SyntaxError {
	return &SyntaxError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a policy document. Every error is a *SyntaxError.
//
// Element names and Effect values are case-sensitive, as AWS has them;
// a repeated key in any object is an error rather than the silent
// last-one-wins of most JSON readers, because in a Condition block it
// usually hides a condition the author meant to keep.
func Parse(data []byte) (*Policy, error) {
	if len(data) > maxPolicyBytes {
		return nil, syntaxErr("", "%d bytes is more than the %d a policy may have",
			len(data), maxPolicyBytes)
	}

	if len(bytes.TrimSpace(data)) == 0 {
		return nil, syntaxErr("", "empty document")
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := decodeNode(dec, "")
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, syntaxErr("", "unexpected data after the policy document")
	}
	return parsePolicy(root)
}

// nodeKind is the JSON type of a node.
type nodeKind int8

const (
	kindString nodeKind = iota
	kindNumber
	kindBool
	kindNull
	kindArray
	kindObject
)

func (k nodeKind) String() string {
	return [...]string{
		"a string", "a number", "a boolean", "null", "a list", "an object",
	}[k]
}

// node is a decoded JSON value that keeps object keys in document order,
// so that reasons list conditions as the author wrote them.
type node struct {
	kind  nodeKind
	text  string // strings, numbers as written, "true" or "false"
	items []node // array elements, or object values
	keys  []string
}

func decodeNode(dec *json.Decoder, path string) (node, error) {
	tok, err := dec.Token()
	if err != nil {
		return node{}, jsonErr(dec, path, err)
	}

	switch t := tok.(type) {
	case string:
		return node{kind: kindString, text: t}, nil
	case json.Number:
		return node{kind: kindNumber, text: t.String()}, nil
	case bool:
		return node{kind: kindBool, text: fmt.Sprint(t)}, nil
	case nil:
		return node{kind: kindNull}, nil
	}

	n := node{kind: kindArray}
	if tok == json.Delim('{') {
		n.kind = kindObject
	}
	seen := map[string]bool{}
	for i := 0; dec.More(); i++ {
		sub := fmt.Sprintf("%s[%d]", path, i)
		if n.kind == kindObject {
			tok, err := dec.Token()
			if err != nil {
				return node{}, jsonErr(dec, path, err)
			}
			key, _ := tok.(string) // object keys are always strings
			sub = joinPath(path, key)
			if seen[key] {
				return node{}, syntaxErr(sub, "repeated key")
			}
			seen[key] = true
			n.keys = append(n.keys, key)
		}
		v, err := decodeNode(dec, sub)
		if err != nil {
			return node{}, err
		}
		n.items = append(n.items, v)
	}
	// The closing delimiter.
	if _, err := dec.Token(); err != nil {
		return node{}, jsonErr(dec, path, err)
	}
	return n, nil
}

func jsonErr(dec *json.Decoder, path string, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return syntaxErr(path, "invalid JSON at byte %d: %s", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return syntaxErr(path, "invalid JSON: the document ends too early")
	}
	return syntaxErr(path, "invalid JSON at byte %d: %v", dec.InputOffset(), err)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field returns the value of key in an object node.
func (n node) field(key string) (node, bool) {
	for i, k := range n.keys {
		if k == key {
			return n.items[i], true
		}
	}
	return node{}, false
}

// checkKeys refuses keys of an object node that are not in allowed.
func (n node) checkKeys(path string, allowed ...string) error {
	for _, k := range n.keys {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return syntaxErr(joinPath(path, k), "unknown element")
		}
	}
	return nil
}

func want(n node, path string, kind nodeKind) error {
	if n.kind != kind {
		return syntaxErr(path, "want %s, got %s", kind, n.kind)
	}
	return nil
}

func parsePolicy(root node) (*Policy, error) {
	if err := want(root, "", kindObject); err != nil {
		return nil, err
	}
	if err := root.checkKeys("", "Version", "Id", "Statement"); err != nil {
		return nil, err
	}

	p := &Policy{}
	if v, ok := root.field("Version"); ok {
		if err := want(v, "Version", kindString); err != nil {
			return nil, err
		}
		if v.text != Version2012 && v.text != Version2008 {
			return nil, syntaxErr("Version", "%q is not a policy language version (%s or %s)",
				v.text, Version2012, Version2008)
		}
		p.Version = v.text
	}
	if v, ok := root.field("Id"); ok {
		if err := want(v, "Id", kindString); err != nil {
			return nil, err
		}
		p.ID = v.text
	}

	st, ok := root.field("Statement")
	if !ok {
		return nil, syntaxErr("Statement", "missing")
	}
	switch st.kind {
	case kindObject:
		s, err := parseStatement(st, "Statement")
		if err != nil {
			return nil, err
		}
		p.Statements = []Statement{s}
	case kindArray:
		if len(st.items) == 0 {
			return nil, syntaxErr("Statement", "empty list")
		}
		for i, item := range st.items {
			s, err := parseStatement(item, fmt.Sprintf("Statement[%d]", i))
			if err != nil {
				return nil, err
			}
			p.Statements = append(p.Statements, s)
		}
	default:
		return nil, syntaxErr("Statement", "want an object or a list, got %s", st.kind)
	}
	return p, nil
}

func parseStatement(n node, path string) (Statement, error) {
	var s Statement
	if err := want(n, path, kindObject); err != nil {
		return s, err
	}
	err := n.checkKeys(path, "Sid", "Effect", "Principal", "NotPrincipal",
		"Action", "NotAction", "Resource", "NotResource", "Condition")
	if err != nil {
		return s, err
	}

	if v, ok := n.field("Sid"); ok {
		if err := want(v, joinPath(path, "Sid"), kindString); err != nil {
			return s, err
		}
		s.Sid = v.text
	}

	v, ok := n.field("Effect")
	if !ok {
		return s, syntaxErr(joinPath(path, "Effect"), "missing")
	}
	if err := want(v, joinPath(path, "Effect"), kindString); err != nil {
		return s, err
	}
	if v.text != string(EffectAllow) && v.text != string(EffectDeny) {
		return s, syntaxErr(joinPath(path, "Effect"), "%q is not Allow or Deny", v.text)
	}
	s.Effect = Effect(v.text)

	name, v, ok, err := either(n, path, "Principal", "NotPrincipal", false)
	if err != nil {
		return s, err
	}
	if ok {
		s.NotPrincipal = name == "NotPrincipal"
		if s.Principal, err = parsePrincipal(v, joinPath(path, name)); err != nil {
			return s, err
		}
	}

	name, v, _, err = either(n, path, "Action", "NotAction", true)
	if err != nil {
		return s, err
	}
	s.NotAction = name == "NotAction"
	if s.Actions, err = stringList(v, joinPath(path, name)); err != nil {
		return s, err
	}
	for i, a := range s.Actions {
		if !validAction(a) {
			return s, syntaxErr(itemPath(v, joinPath(path, name), i),
				"%q is not \"*\" or service:action", a)
		}
	}

	name, v, ok, err = either(n, path, "Resource", "NotResource", false)
	if err != nil {
		return s, err
	}
	if ok {
		s.NotResource = name == "NotResource"
		if s.Resources, err = stringList(v, joinPath(path, name)); err != nil {
			return s, err
		}
		for i, r := range s.Resources {
			if r != "*" && !strings.HasPrefix(r, "arn:") {
				return s, syntaxErr(itemPath(v, joinPath(path, name), i),
					"%q is not \"*\" or an ARN", r)
			}
		}
	}

	if v, ok := n.field("Condition"); ok {
		if s.Conditions, err = parseConditions(v, joinPath(path, "Condition")); err != nil {
			return s, err
		}
	}
	return s, nil
}

// either returns whichever of two exclusive elements the statement has.
func either(n node, path, a, b string, required bool) (string, node, bool, error) {
	va, okA := n.field(a)
	vb, okB := n.field(b)
	switch {
	case okA && okB:
		return "", node{}, false, syntaxErr(path, "both %s and %s; a statement has one", a, b)
	case okA:
		return a, va, true, nil
	case okB:
		return b, vb, true, nil
	case required:
		return "", node{}, false, syntaxErr(path, "missing %s or %s", a, b)
	}
	return "", node{}, false, nil
}

// itemPath is the path of the i-th entry of a value that is a string or a
// list of strings.
func itemPath(n node, path string, i int) string {
	if n.kind == kindArray {
		return fmt.Sprintf("%s[%d]", path, i)
	}
	return path
}

// stringList reads a string or a non-empty list of non-empty strings.
func stringList(n node, path string) ([]string, error) {
	switch n.kind {
	case kindString:
		if n.text == "" {
			return nil, syntaxErr(path, "empty string")
		}
		return []string{n.text}, nil
	case kindArray:
		if len(n.items) == 0 {
			return nil, syntaxErr(path, "empty list")
		}
		out := make([]string, 0, len(n.items))
		for i, item := range n.items {
			sub := fmt.Sprintf("%s[%d]", path, i)
			if err := want(item, sub, kindString); err != nil {
				return nil, err
			}
			if item.text == "" {
				return nil, syntaxErr(sub, "empty string")
			}
			out = append(out, item.text)
		}
		return out, nil
	}
	return nil, syntaxErr(path, "want a string or a list of strings, got %s", n.kind)
}

// actionPattern is "service:pattern": a service prefix of letters, digits
// and dashes, then a non-empty action name that may hold * and ?.
var actionPattern = regexp.MustCompile(`^[A-Za-z0-9-]+:[^:\s]+$`)

func validAction(a string) bool {
	return a == "*" || actionPattern.MatchString(a)
}

func parsePrincipal(n node, path string) (*Principal, error) {
	if n.kind == kindString {
		if n.text != "*" {
			return nil, syntaxErr(path,
				"%q is not \"*\"; name principals in an object like {\"AWS\": \"ARN\"}", n.text)
		}
		return &Principal{All: true}, nil
	}
	if n.kind != kindObject {
		return nil, syntaxErr(path, "want \"*\" or an object, got %s", n.kind)
	}
	if len(n.keys) == 0 {
		return nil, syntaxErr(path, "names no principal")
	}

	p := &Principal{}
	for i, k := range n.keys {
		sub := joinPath(path, k)
		var dst *[]string
		switch k {
		case "AWS":
			dst = &p.AWS
		case "Service":
			dst = &p.Service
		case "CanonicalUser":
			dst = &p.CanonicalUser
		case "Federated":
			dst = &p.Federated
		default:
			return nil, syntaxErr(sub,
				"unknown principal type (want AWS, Service, CanonicalUser or Federated)")
		}
		list, err := stringList(n.items[i], sub)
		if err != nil {
			return nil, err
		}
		*dst = list
	}
	return p, nil
}

func parseConditions(n node, path string) ([]Condition, error) {
	if err := want(n, path, kindObject); err != nil {
		return nil, err
	}

	var out []Condition
	for i, opName := range n.keys {
		opPath := joinPath(path, opName)
		op, err := parseOperator(opName)
		if err != nil {
			return nil, syntaxErr(opPath, "%s", err)
		}
		block := n.items[i]
		if block.kind != kindObject {
			return nil, syntaxErr(opPath, "want an object of condition keys, got %s", block.kind)
		}
		if len(block.keys) == 0 {
			return nil, syntaxErr(opPath, "no condition keys")
		}

		for j, key := range block.keys {
			keyPath := joinPath(opPath, key)
			values, err := conditionValues(block.items[j], keyPath)
			if err != nil {
				return nil, err
			}
			for k, v := range values {
				if msg := op.checkValue(v); msg != "" {
					return nil, syntaxErr(itemPath(block.items[j], keyPath, k), "%q %s", v, msg)
				}
			}
			out = append(out, Condition{Operator: opName, Key: key, Values: values, op: op})
		}
	}
	return out, nil
}

// conditionValues reads a condition's value: a string, number or boolean,
// or a non-empty list of them, all as text.
func conditionValues(n node, path string) ([]string, error) {
	scalar := func(n node, path string) (string, error) {
		switch n.kind {
		case kindString, kindNumber, kindBool:
			return n.text, nil
		}
		return "", syntaxErr(path, "want a string, number or boolean, got %s", n.kind)
	}

	if n.kind != kindArray {
		v, err := scalar(n, path)
		return []string{v}, err
	}
	if len(n.items) == 0 {
		return nil, syntaxErr(path, "no values")
	}
	out := make([]string, 0, len(n.items))
	for i, item := range n.items {
		v, err := scalar(item, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
