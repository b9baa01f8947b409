package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestLoadGood(t *testing.T) {
	got, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Buckets: []Bucket{
			{Name: "logs-archive"},
			{Name: "eu-reports", Region: "eu-west-1", ExpectPath: "nat_gateway"},
		},
		Resolver:    "169.254.169.253:53",
		PathStyle:   true,
		ProbePrefix: "health/pathagent/",
		Timeout:     5 * time.Second,

		Interval:        time.Minute,
		MaxConcurrent:   2,
		TopologyRefresh: 30 * time.Minute,
		TLSIssuers:      []string{"Amazon", "Corp Inspection CA"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v\nwant %+v", got, want)
	}
}

func TestLoadEmpty(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil || len(c.Buckets) != 0 {
		t.Errorf("Parse(empty) = %+v, %v; want an empty config", c, err)
	}
}

// Every bad file is refused with the file, the line and the key.
func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown-key.yaml", `testdata/unknown-key.yaml:3: buckets[0].colour: unknown key`},
		{"bad-bucket.yaml", `testdata/bad-bucket.yaml:2: buckets[0].name: "Bad_Bucket" is not a valid S3 bucket name`},
		{"bad-duration.yaml", `testdata/bad-duration.yaml:2: timeout: "soon" is not a positive duration like 10s`},
		{"bad-resolver.yaml", `testdata/bad-resolver.yaml:2: resolver: "10.0.0.2" is not host:port`},
		{"missing-name.yaml", `testdata/missing-name.yaml:2: buckets[0].name: missing`},
		{"twice.yaml", `testdata/twice.yaml:1: buckets[1]: bucket "a-bucket" is listed twice`},
		{"bad-region.yaml", `testdata/bad-region.yaml:3: buckets[0].region: "Europe" is not an AWS region name like us-east-1`},
		{"repeated.yaml", `testdata/repeated.yaml:2: buckets: repeated key`},
		{
			// Both problems are reported at once, in file order.
			"two-errors.yaml",
			`testdata/two-errors.yaml:2: path_style: "maybe" is not true or false` + "\n" +
				`testdata/two-errors.yaml:3: probe_prefix: "/abs" must be a non-empty key prefix ending in / and not starting with it`,
		},
		{
			"bad-run.yaml",
			`testdata/bad-run.yaml:3: buckets[0].expect_path: "vpn" is not a path kind (gateway_endpoint, interface_endpoint, internet_gateway, nat_gateway, transit_gateway, vpc_peering, egress_only_internet_gateway, other, proxy)` + "\n" +
				`testdata/bad-run.yaml:4: interval: 1s is shorter than the minimum 10s` + "\n" +
				`testdata/bad-run.yaml:5: max_concurrent: "0" is not a whole number from 1 to 64`,
		},
		{"syntax.yaml", `testdata/syntax.yaml: yaml: line 1: did not find expected ',' or ']'`},
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
