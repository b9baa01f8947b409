package promlab

import (
	"strings"
	"testing"
	"time"
)

func TestScaleExpr(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		seconds []string
		want    string
		wantErr string
	}{
		{
			name: "range and offset",
			expr: "max_over_time(x[10m]) == 0 and on (bucket) x offset 10m",
			want: "max_over_time(x[20s]) == 0 and on (bucket) x offset 20s",
		},
		{
			name: "subquery with and without a step",
			expr: "max_over_time(x[15m:1m]) + min_over_time(x[1h:])",
			want: "max_over_time(x[30s:2s]) + min_over_time(x[2m:])",
		},
		{
			// Brackets and units inside a string are a regexp, not a
			// range.
			name: "string literals left alone",
			expr: `increase(x{code=~"[0-9]+m", op='a[5m]'}[5m]) > 0`,
			want: `increase(x{code=~"[0-9]+m", op='a[5m]'}[10s]) > 0`,
		},
		{
			name:    "seconds literals",
			expr:    "time() - (t > 0) > 900 or y > 3 * 3600",
			seconds: []string{"900", "3 * 3600"},
			want:    "time() - (t > 0) > 30 or y > 360",
		},
		{
			// Digits inside names are not numbers.
			name: "names with digits",
			expr: `pathagent_finding{code="s3"} == 1 and s3_thing offset 1h`,
			want: `pathagent_finding{code="s3"} == 1 and s3_thing offset 2m`,
		},
		{
			name:    "an undeclared number",
			expr:    "x > 42",
			wantErr: "number 42: add it to SecondsLiterals",
		},
		{
			name:    "a declared literal missing",
			expr:    "x > 0",
			seconds: []string{"900"},
			wantErr: `seconds literal "900" not in the expression`,
		},
		{
			// 1s / 30 has no exact Prometheus spelling.
			name:    "a duration that does not divide",
			expr:    "x[1s]",
			wantErr: "1s / 30 is not a whole number of milliseconds",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scaleExpr(tt.expr, 30, tt.seconds)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	ratio, err := Ratio()
	if err != nil {
		t.Fatal(err)
	}
	// The fleet's scrape and lookback must scale to whole milliseconds.
	for _, d := range []time.Duration{FleetScrape, FleetLookback} {
		if _, err := FormatDuration(d, ratio); err != nil {
			t.Error(err)
		}
	}
}
