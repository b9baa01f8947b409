// Package policy reads AWS policy documents (S3 bucket policies and VPC
// endpoint policies) and decides one request against them, saying which
// statements decided and why, and saying "unknown" rather than guessing.
package policy

// Effect is what a statement does when it applies.
type Effect string

// The two effects a statement can have.
const (
	EffectAllow Effect = "Allow"
	EffectDeny  Effect = "Deny"
)

// Policy language versions. Only the newer one has policy variables; under
// the older one (and when Version is absent, which AWS reads as the older)
// "${...}" is plain text.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// Policy is a parsed policy document.
type Policy struct {
	Version    string      // "2012-10-17", "2008-10-17", or "" when absent
	ID         string      // the Id element; "" when absent
	Statements []Statement // in document order; never empty
}

// Statement is one element of a policy's Statement.
type Statement struct {
	Sid    string // "" when the statement has none
	Effect Effect

	// Principal is who the statement is about; nil when the statement has
	// neither Principal nor NotPrincipal. With NotPrincipal set, it lists
	// the principals the statement does not apply to.
	Principal    *Principal
	NotPrincipal bool

	// Actions are "*" or service:pattern entries; with NotAction set, the
	// statement applies to every action except these.
	Actions   []string
	NotAction bool

	// Resources are "*" or ARN patterns; nil when the statement has
	// neither Resource nor NotResource. With NotResource set, the statement
	// applies to every resource except these.
	Resources   []string
	NotResource bool

	// Conditions all have to hold for the statement to apply; in
	// document order, one per operator and key.
	Conditions []Condition
}

// Principal is the content of a Principal or NotPrincipal element.
type Principal struct {
	All           bool     // the element is "*": every principal, anonymous included
	AWS           []string // "*", account ids and ARNs
	Service       []string // service principals, like cloudtrail.amazonaws.com
	CanonicalUser []string // S3 canonical user ids
	Federated     []string // identity providers
}

// Condition is one operator applied to one key, as in
// {"StringNotEquals": {"aws:SourceVpce": ["vpce-1a2b3c4d"]}}.
type Condition struct {
	Operator string   // as written, like "ForAnyValue:StringLikeIfExists"
	Key      string   // as written; keys are compared case-insensitively
	Values   []string // as written; JSON numbers and booleans as their text

	op operator // Operator taken apart
}
