// Package e2e holds the end-to-end tests: the real pathagent binary in the
// lab, scraped by a real Prometheus with the shipped alert rules loaded.
// It has no code of its own; everything lives in its _test.go files.
package e2e
