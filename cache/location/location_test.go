package location

import (
	"strings"
	"testing"
)

func TestParseErrorsNeverRepeatSecrets(t *testing.T) {
	for _, in := range []string{
		"https://user:s3cret%zz@host/",
		"https://user:s3cret@host:port/",
		"http://user:s3cret@/path",
		"s3://user:s3cret@?region=x",
		"ftp://user:s3cret@host/",
		"https://user:s3cret@host/?bogus=1",
		"file://user:s3cret@host/dir",
		"https://user:s3cret@host/?priority=abc",
		"user:s3cret@host",
		"://user:s3cret@host",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", in)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) error leaks the password: %v", in, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error is not one line: %q", in, err)
		}
	}
}

func TestIdentityAndRedacted(t *testing.T) {
	for _, tc := range []struct{ in, identity, redacted string }{
		{"file:///srv/cache", "file:///srv/cache", "file:///srv/cache"},
		{"file:///srv/cache/?compression=xz", "file:///srv/cache", "file:///srv/cache/?compression=xz"},
		{"https://u:pw@host/c/?secret-key=/k.sec", "https://host/c", "https://u:xxxxx@host/c/?secret-key=xxxxx"},
		{"s3://b/p?region=eu&endpoint=127.0.0.1:9000&compression=zstd", "s3://b/p?endpoint=127.0.0.1%3A9000", "s3://b/p?compression=zstd&endpoint=127.0.0.1:9000&region=eu"},
		{"s3://b", "s3://b", "s3://b"},
	} {
		u, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := u.Identity(); got != tc.identity {
			t.Errorf("Identity(%q) = %q, want %q", tc.in, got, tc.identity)
		}
		if got := u.Redacted(); got != tc.redacted {
			t.Errorf("Redacted(%q) = %q, want %q", tc.in, got, tc.redacted)
		}
	}
}

func TestSameCacheDifferentSettings(t *testing.T) {
	a, _ := Parse("s3://b/p?region=eu&compression=xz")
	b, _ := Parse("s3://b/p/?region=us&secret-key=/x")
	c, _ := Parse("s3://b/p?endpoint=minio:9000")
	if a.Identity() != b.Identity() {
		t.Errorf("%s and %s should be one cache", a.Identity(), b.Identity())
	}
	if a.Identity() == c.Identity() {
		t.Errorf("an S3 endpoint makes another cache: both %s", a.Identity())
	}
}

func TestRedactUnparsable(t *testing.T) {
	for _, in := range []string{"https://user:pa#ss@host/", "https://user:s3cret%zz@host/", "http://u:p/w@h/"} {
		if got := Redact(in); strings.Contains(got, "pa#ss") || strings.Contains(got, "s3cret") || strings.Contains(got, ":p/w") {
			t.Errorf("Redact(%q) = %q", in, got)
		}
	}
}

func TestRedactHashInPassword(t *testing.T) {
	if got := Redact("https://user:12#s3cret@host/"); got != "https://user:xxxxx@host/" {
		t.Errorf("Redact = %q", got)
	}
	if _, err := Parse("https://user:12#s3cret@host/"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Parse of a URL with '#': %v", err)
	}
}
