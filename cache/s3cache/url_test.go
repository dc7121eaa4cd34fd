package s3cache

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"
)

func isPermanent(err error) bool {
	var perm *backoff.PermanentError
	return errors.As(err, &perm)
}

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		endpoint, scheme, want, err string
	}{
		{"", "", "", ""},
		{"", "https", "", ""},
		{"", "http", "", "needs an endpoint"},
		{"minio.local:9000", "", "https://minio.local:9000", ""},
		{"127.0.0.1:9000", "http", "http://127.0.0.1:9000", ""},
		{"127.0.0.1:9000", "https", "https://127.0.0.1:9000", ""},
		{"http://127.0.0.1:9000/", "", "http://127.0.0.1:9000", ""},
		{"http://127.0.0.1:9000", "http", "http://127.0.0.1:9000", ""},
		{"http://127.0.0.1:9000", "https", "", "contradicts"},
		{"host", "ftp", "", "want http or https"},
		{"ftp://host", "", "", "want host[:port]"},
		{"http://user:pw@host", "", "", "credentials"},
	} {
		got, err := endpointURL(tc.endpoint, tc.scheme)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("endpointURL(%q, %q) = %q, %v; want error %q", tc.endpoint, tc.scheme, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("endpointURL(%q, %q) = %q, %v; want %q", tc.endpoint, tc.scheme, got, err, tc.want)
		}
	}
}

// TestOpen checks URL parsing and key naming; open does not talk to the
// server.
func TestOpen(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	for _, tc := range []struct {
		url, str, objKey string // objKey: the object key of "nar/x.nar"
	}{
		{"s3://bucket", "s3://bucket", "nar/x.nar"},
		{"s3://bucket/", "s3://bucket", "nar/x.nar"},
		{"s3://bucket/pre/fix/?region=eu-west-1", "s3://bucket/pre/fix", "pre/fix/nar/x.nar"},
		{"s3://bucket?endpoint=127.0.0.1:9000&scheme=http&compression=zstd", "s3://bucket at http://127.0.0.1:9000", "nar/x.nar"},
		{"s3://b/p?endpoint=s3.example.org", "s3://b/p at https://s3.example.org", "p/nar/x.nar"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		c, err := open(t.Context(), u, Config{})
		if err != nil {
			t.Errorf("open(%s): %v", tc.url, err)
			continue
		}
		if c.String() != tc.str || c.key("nar/x.nar") != tc.objKey {
			t.Errorf("open(%s): String %q, key %q; want %q, %q", tc.url, c, c.key("nar/x.nar"), tc.str, tc.objKey)
		}
		if c.cfg.PartSize != DefaultPartSize || c.cfg.Concurrency != DefaultConcurrency {
			t.Errorf("open(%s): defaults %+v", tc.url, c.cfg)
		}
		if r := c.client.Options().Region; r != "us-east-1" && !strings.Contains(tc.url, "region=") {
			t.Errorf("open(%s): region %q, want the us-east-1 default", tc.url, r)
		}
		if c.client.Options().UsePathStyle != strings.Contains(tc.url, "endpoint=") {
			t.Errorf("open(%s): path style %v", tc.url, c.client.Options().UsePathStyle)
		}
	}

	for _, tc := range []struct {
		url  string
		cfg  Config
		want string
	}{
		{"s3:///prefix", Config{}, "needs a bucket"},
		{"s3://key:secret@bucket", Config{}, "credentials do not belong"},
		{"http://bucket", Config{}, "not s3"},
		{"s3://bucket?scheme=gopher", Config{}, "want http or https"},
		{"s3://bucket", Config{PartSize: 1 << 20}, "part size"},
		{"s3://bucket", Config{Concurrency: -1}, "concurrency"},
		{"s3://bucket?profile=no-such-profile", Config{}, "no-such-profile"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = open(t.Context(), u, tc.cfg)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open(%s, %+v) = %v; want a permanent error about %q", tc.url, tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("open(%s): error shows the secret: %v", tc.url, err)
		}
	}
}
