package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestNetrcLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, netrc, host string
		login, password   string
		ok                bool
	}{
		{"one line", "machine cache.example login alice password s3cret", "cache.example", "alice", "s3cret", true},
		{"multi line", "machine a login x password y\nmachine cache.example\n\tlogin alice\n\tpassword s3cret\n", "cache.example", "alice", "s3cret", true},
		{"first match wins", "machine h login a password 1\nmachine h login b password 2", "h", "a", "1", true},
		{"default", "machine other login x password y\ndefault login d password dp", "h", "d", "dp", true},
		{"machine before default", "default login d password dp\nmachine h login a password 1", "h", "a", "1", true},
		{"no match", "machine other login x password y", "h", "", "", false},
		{"empty", "", "h", "", "", false},
		{"quoted", `machine h login "a b" password "p \"q\" \\ r"`, "h", "a b", `p "q" \ r`, true},
		{"account ignored", "machine h login a account acc password p", "h", "a", "p", true},
		{"comment", "# machine h login bad password bad\nmachine h login a password p", "h", "a", "p", true},
		{"macdef skipped", "macdef init\nmachine h login bad password bad\n\nmachine h login a password p", "h", "a", "p", true},
		{"login only", "machine h login a", "h", "a", "", true},
		{"host is not a prefix", "machine h.example login a password p", "h", "", "", false},
	}
	for _, tt := range tests {
		login, password, ok := netrcLookup(tt.netrc, tt.host)
		if login != tt.login || password != tt.password || ok != tt.ok {
			t.Errorf("%s: netrcLookup = %q, %q, %v; want %q, %q, %v", tt.name, login, password, ok, tt.login, tt.password, tt.ok)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Thu, 02 Jan 2025 03:05:35 GMT", 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
