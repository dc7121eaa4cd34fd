package use

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/nixconf"
)

func TestAddValue(t *testing.T) {
	t.Parallel()
	const url = "file:///srv/cache"
	tests := []struct {
		name, conf, want string
		changed          bool
	}{
		{"empty file", "", "extra-substituters = file:///srv/cache\n", true},
		{"no final newline", "sandbox = false", "sandbox = false\nextra-substituters = file:///srv/cache\n", true},
		{"appended to the existing line, comment kept",
			"# mine\nextra-substituters = https://a/  # the team cache\nsandbox = false\n",
			"# mine\nextra-substituters = https://a/ file:///srv/cache  # the team cache\nsandbox = false\n", true},
		{"last of several lines", "extra-substituters = a\nextra-substituters = b\n", "extra-substituters = a\nextra-substituters = b file:///srv/cache\n", true},
		{"empty value", "extra-substituters =\n", "extra-substituters = file:///srv/cache\n", true},
		{"CRLF kept", "extra-substituters = a\r\n", "extra-substituters = a file:///srv/cache\r\n", true},
		{"already there", "extra-substituters = a file:///srv/cache\n", "extra-substituters = a file:///srv/cache\n", false},
		{"same but for a trailing slash", "extra-substituters = file:///srv/cache/\n", "extra-substituters = file:///srv/cache/\n", false},
		{"already in substituters", "substituters = file:///srv/cache\n", "substituters = file:///srv/cache\n", false},
		{"commented out does not count", "# extra-substituters = file:///srv/cache\n", "# extra-substituters = file:///srv/cache\nextra-substituters = file:///srv/cache\n", true},
		{"a longer URL does not count", "extra-substituters = file:///srv/cache2\n", "extra-substituters = file:///srv/cache2 file:///srv/cache\n", true},
	}
	for _, tt := range tests {
		got, changed := addValue(tt.conf, sameURL, "extra-substituters", url, "substituters")
		if got != tt.want || changed != tt.changed {
			t.Errorf("%s: addValue = %q, %v; want %q, %v", tt.name, got, changed, tt.want, tt.changed)
		}
		if again, changed := addValue(got, sameURL, "extra-substituters", url, "substituters"); again != got || changed {
			t.Errorf("%s: second addValue changed %q to %q", tt.name, got, again)
		}
	}
}

func TestSetNetrcEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, netrc, want string
		changed           bool
	}{
		{"empty", "", "machine h login u password p\n", true},
		{"appended, others kept", "# mine\nmachine a login x password y", "# mine\nmachine a login x password y\nmachine h login u password p\n", true},
		{"replaced in place", "machine a login x password y\nmachine h\n  login old\n  password old\nmachine b login z password w\n",
			"machine a login x password y\nmachine h login u password p\nmachine b login z password w\n", true},
		{"same entry", "machine h login u password p\n", "machine h login u password p\n", false},
		{"before default", "machine a login x password y\ndefault login d password d\n",
			"machine a login x password y\nmachine h login u password p\ndefault login d password d\n", true},
		{"macdef skipped", "macdef init\nmachine h login bad\n\nmachine a login x password y\n",
			"macdef init\nmachine h login bad\n\nmachine a login x password y\nmachine h login u password p\n", true},
	}
	for _, tt := range tests {
		got, changed, err := setNetrcEntry(tt.netrc, "h", "u", "p")
		if err != nil || got != tt.want || changed != tt.changed {
			t.Errorf("%s: setNetrcEntry = %q, %v, %v; want %q, %v", tt.name, got, changed, err, tt.want, tt.changed)
		}
	}
	if _, _, err := setNetrcEntry("", "h", "u", "pass word"); err == nil || strings.Contains(err.Error(), "pass word") {
		t.Errorf("password with a space: err = %v, want an error without the password", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	const pub = "cache-1:1Bdw4SVI8tnOjrbujiC4jBtu4fhTdWXTxxC96DpTvRs="
	const sec = "cache-1:0lcknxY2HH5IrNSVB0pmbJ5A6FUeJaXiXnqHm/AEOnDUF3DhJUjy2c6OtuiOILiMG274+FN1ZdPHEL3oOlO9Gw=="
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, ok := range []string{pub, " " + pub + "\n", write("k.pub", pub+"\n")} {
		if k, err := nixconf.ParseKey(ok); err != nil || k.String() != pub {
			t.Errorf("ParseKey(%q) = %v, %v; want %s", ok, k, err, pub)
		}
	}
	for _, bad := range []string{"", "nope", "cache-1:", "cache-1:AAAA", ":" + strings.SplitN(pub, ":", 2)[1],
		sec, write("k.sec", sec), write("junk", "hello"), filepath.Join(dir, "missing")} {
		_, err := nixconf.ParseKey(bad)
		if err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), sec[10:]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseKey(%q) error shows the secret or spans lines: %v", bad, err)
		}
	}
	if _, err := nixconf.ParseKey(sec); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("a secret key: err = %v, want one saying it is a secret key", err)
	}
}

func TestNixOSSnippet(t *testing.T) {
	t.Parallel()
	got := NixOSSnippet("https://cache.example/a", `k:${x}"`)
	want := "nix.settings = {\n  extra-substituters = [ \"https://cache.example/a\" ];\n  extra-trusted-public-keys = [ \"k:\\${x}\\\"\" ];\n};\n"
	if got != want {
		t.Errorf("NixOSSnippet = %q, want %q", got, want)
	}
}
