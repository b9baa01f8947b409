package config

import (
	"path/filepath"
	"testing"
)

// Malformed shapes beyond TestLoadBad's bad values: wrong types, nested
// lists, tabs, a bucket listed twice in two spellings, a list where a
// mapping belongs. Each is refused with the file, the line and the key;
// only a YAML syntax error, which stops the decoder before any key is
// known, names the file and the line alone.
func TestLoadMalformed(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"wrong-type-buckets.yaml", `testdata/wrong-type-buckets.yaml:1: buckets: want a list of buckets`},
		{"wrong-type-timeout.yaml", `testdata/wrong-type-timeout.yaml:2: timeout: want a single value`},
		{"wrong-type-bool.yaml", `testdata/wrong-type-bool.yaml:2: path_style: {on: true} is not true or false`},
		{"wrong-type-int.yaml", `testdata/wrong-type-int.yaml:2: max_concurrent: "four" is not a whole number from 1 to 64`},
		{"nested-list.yaml", `testdata/nested-list.yaml:2: buckets[0]: want a mapping of keys to values`},
		{"nested-name.yaml", `testdata/nested-name.yaml:2: buckets[0].name: want a single value`},
		{"duplicate-mixed.yaml", `testdata/duplicate-mixed.yaml:3: buckets[1]: bucket "a-bucket" is listed twice`},
		{"top-level-list.yaml", `testdata/top-level-list.yaml:1: (top level): want a mapping of keys to values`},
		{"tabs.yaml", `testdata/tabs.yaml: yaml: line 2: found character that cannot start any token`},
		{"two-documents.yaml", `testdata/two-documents.yaml:2: (top level): want one document`},
		{"complex-key.yaml", `testdata/complex-key.yaml:2: [a, b]: unknown key`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

// A file with nothing in it, or only comments, is an empty configuration,
// not an error: Parse leaves refusing a configuration without buckets to
// the commands, which name the file and the key.
func TestLoadNothing(t *testing.T) {
	for _, f := range []string{"empty.yaml", "comment-only.yaml"} {
		c, err := Load(filepath.Join("testdata", f))
		if err != nil || len(c.Buckets) != 0 {
			t.Errorf("Load(%s) = %+v, %v; want an empty configuration", f, c, err)
		}
	}
}
