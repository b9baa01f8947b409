package resolve

import (
	"errors"
	"testing"
)

func TestFromResolvConf(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    string
		wantErr string // exact error text; "" for none
	}{
		{name: "ec2 default", file: "ec2.conf", want: "10.16.0.2:53"},
		{
			name: "comments and options before",
			file: "options-first.conf",
			want: "169.254.169.253:53",
		},
		{name: "ipv6 first", file: "ipv6.conf", want: "[fd00:ec2::253]:53"},
		{name: "ipv6 with zone", file: "ipv6-zone.conf", want: "[fe80::1%eth0]:53"},
		// Like the C library, lines that do not parse are skipped.
		{name: "bad lines skipped", file: "bad-then-good.conf", want: "127.0.0.53:53"},
		{
			name:    "no nameserver",
			file:    "none.conf",
			wantErr: "resolv.conf testdata/none.conf: no nameserver line with an IP address",
		},
		{
			name:    "empty file",
			file:    "empty.conf",
			wantErr: "resolv.conf testdata/empty.conf: no nameserver line with an IP address",
		},
		{
			name:    "missing file",
			file:    "missing.conf",
			wantErr: "read resolv.conf: open testdata/missing.conf: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromResolvConf("testdata/" + tt.file)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromResolvConfSentinel(t *testing.T) {
	_, err := FromResolvConf("testdata/none.conf")
	if !errors.Is(err, ErrNoNameserver) {
		t.Errorf("err = %v, want ErrNoNameserver", err)
	}
}
