package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the decoder. It must never panic; a
// refusal must name the file and, for every problem below the YAML syntax,
// the line; a configuration it accepts must hold only values the agent can
// use.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "---\n", "~\n", "buckets: [[a-bucket]]\n", "buckets: a-bucket\n",
		"buckets:\n\t- a-bucket\n", "buckets: [&n a-bucket, *n]\n", "? [a]\n: b\n",
		"buckets: [a-bucket]\n---\nbuckets: [b-bucket]\n",
		"max_concurrent: 99999999999999999999\n", "timeout: 9999999999999h\n",
		"interval: !!int 10\n", "buckets: [{name: a-bucket, <<: {region: us-east-1}}]\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		c, err := Parse(file, data)
		if err != nil {
			checkErrors(t, file, err)
			return
		}
		checkConfig(t, c)
	})
}

func checkErrors(t *testing.T, file string, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			// A syntax error from the YAML decoder: it names the file
			// and, in its own words, the line.
			if !strings.HasPrefix(e.Error(), file+": ") {
				t.Errorf("error %q does not name the file", e)
			}
			continue
		}
		if ce.File != file || ce.Line < 1 || ce.Msg == "" {
			t.Errorf("error %+v lacks its file, line or message", ce)
		}
	}
}

func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range c.Buckets {
		if !bucketName.MatchString(b.Name) || seen[b.Name] {
			t.Errorf("accepted bucket %q (invalid or listed twice)", b.Name)
		}
		seen[b.Name] = true
		if b.Region != "" && !regionName.MatchString(b.Region) {
			t.Errorf("accepted region %q", b.Region)
		}
		if b.ExpectPath != "" && !slices.Contains(PathKinds, b.ExpectPath) {
			t.Errorf("accepted expect_path %q", b.ExpectPath)
		}
	}
	if c.Resolver != "" && CheckHostPort(c.Resolver) != nil {
		t.Errorf("accepted resolver %q", c.Resolver)
	}
	switch {
	case c.Timeout < 0:
		t.Errorf("accepted timeout %v", c.Timeout)
	case c.Interval != 0 && c.Interval < minInterval:
		t.Errorf("accepted interval %v", c.Interval)
	case c.TopologyRefresh != 0 && c.TopologyRefresh < minTopologyRefresh:
		t.Errorf("accepted topology_refresh %v", c.TopologyRefresh)
	case c.MaxConcurrent < 0 || c.MaxConcurrent > maxConcurrent:
		t.Errorf("accepted max_concurrent %d", c.MaxConcurrent)
	}
	if p := c.ProbePrefix; p != "" && (strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/")) {
		t.Errorf("accepted probe_prefix %q", p)
	}
}
