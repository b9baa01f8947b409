package scenario

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every shipped scenario loads.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob("../../../lab/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); s.Name != want {
			t.Errorf("%s: name %q, want the file's name %q", f, s.Name, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "unknown key",
			doc:  "name: x\nregion: r\ncolour: blue\n",
			want: "s.yaml: yaml: unmarshal errors:\n  line 3: field colour not found in type scenario.Scenario",
		},
		{
			name: "front off loopback",
			doc: `name: x
region: us-east-1
instance: {id: i-1, subnet_id: subnet-1, vpc_id: vpc-1, vpc_cidr: 10.0.0.0/16, subnet_cidr: 10.0.1.0/24, private_ip: 10.0.1.5}
route_tables: [{id: rtb-1, main: true}]
s3: [{region: us-east-1, fronts: [{address: 10.0.0.9, source: 127.0.0.2}]}]
`,
			want: "s.yaml: s3[0].fronts[0].address: 10.0.0.9 is not a loopback address",
		},
		{
			name: "route with both destinations",
			doc: `name: x
region: us-east-1
instance: {id: i-1, subnet_id: subnet-1, vpc_id: vpc-1, vpc_cidr: 10.0.0.0/16, subnet_cidr: 10.0.1.0/24, private_ip: 10.0.1.5}
route_tables: [{id: rtb-1, main: true, routes: [{destination: 0.0.0.0/0, prefix_list: pl-1, target: igw-1}]}]
`,
			want: "s.yaml: route_tables[0].routes[0]: set exactly one of destination and prefix_list",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tt.doc))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}
