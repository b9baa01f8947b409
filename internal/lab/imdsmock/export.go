package imdsmock

import "github.com/pathagent/pathagent/internal/lab/scenario"

// ConfigJSON returns the mock's override file (its -c flag) that makes it
// answer as the instance of s, for callers that run the mock themselves,
// for example inside a network namespace on 169.254.169.254.
func ConfigJSON(s *scenario.Scenario) ([]byte, error) { return config(s) }
