package s3cache

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"

	"nixpush/cache"
	"nixpush/internal/servertest"
)

// TestBadCredentials: a wrong secret or an unknown access key is refused
// for good, says what to fix, and shows no secret. New finds out first;
// a cache opened without the check fails the same way on every call.
func TestBadCredentials(t *testing.T) {
	s := servertest.StartVersitygw(t)
	const wrongSecret = "wrongSECRETwrongSECRETwrong0123456789"
	for _, tc := range []struct{ name, access, secret string }{
		{"wrong secret", s.AccessKey, wrongSecret},
		{"unknown access key", "AKUNKNOWNUNKNOWN", wrongSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tc.access)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			check := func(what string, err error) {
				t.Helper()
				switch {
				case err == nil || !isPermanent(err):
					t.Errorf("%s = %v; want a permanent error", what, err)
				case !strings.Contains(err.Error(), "access denied by s3://"+s.Bucket) ||
					!strings.Contains(err.Error(), "check AWS credentials"):
					t.Errorf("%s = %v; want it to say to check the credentials", what, err)
				case strings.Contains(err.Error(), tc.secret) || strings.Contains(err.Error(), s.SecretKey):
					t.Errorf("%s = %v; shows a secret", what, err)
				}
			}
			_, err := New(t.Context(), s.URL(""), Config{})
			check("New", err)

			c, err := open(t.Context(), s.URL(""), Config{PartSize: MinPartSize})
			if err != nil {
				t.Fatal(err)
			}
			// versitygw answers an unknown access key with 404, which a
			// HEAD cannot tell from a missing object.
			if _, err = c.Exists(t.Context(), "x.narinfo"); tc.access == s.AccessKey {
				check("Exists", err)
			}
			_, err = c.Get(t.Context(), "x.narinfo")
			check("Get", err)
			err = c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo)
			check("Put", err)
			err = c.Put(t.Context(), "nar/x.nar", bytes.NewReader(make([]byte, 6<<20)), cache.TypeNAR)
			check("Put (multipart)", err)
		})
	}
}

// TestNoCredentials: with nothing in the credential chain, New says how
// to provide credentials.
func TestNoCredentials(t *testing.T) {
	s := servertest.StartVersitygw(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := New(t.Context(), s.URL(""), Config{})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "no AWS credentials: set AWS_ACCESS_KEY_ID") {
		t.Errorf("New without credentials = %v; want a permanent error saying how to set them", err)
	}
}

// TestMissingBucket: New refuses a bucket that does not exist, with one
// clear line; a cache opened without the check fails for good on writes.
func TestMissingBucket(t *testing.T) {
	s := servertest.StartVersitygw(t)
	u, err := url.Parse("s3://no-such-bucket?scheme=http&endpoint=" + s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(t.Context(), u, Config{})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("New(missing bucket) = %v; want a permanent error saying the bucket does not exist", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("New(missing bucket): error spans lines: %q", err)
	}

	c, err := open(t.Context(), u, Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo)
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Put into a missing bucket = %v; want a permanent error", err)
	}
	_, err = c.Get(t.Context(), "x.narinfo")
	if err == nil || !isPermanent(err) || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get from a missing bucket = %v; want a permanent error, not ErrNotFound", err)
	}
}

// TestErrorsNameTheScheme: messages name the endpoint as the URL gave it
// (scheme=http), never "https" as the SDK's own text does, and carry no
// empty fields.
func TestErrorsNameTheScheme(t *testing.T) {
	s := servertest.StartVersitygw(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrongSECRETwrongSECRETwrong0123456789")
	c, err := open(t.Context(), s.URL(""), Config{PartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, want string) {
		t.Helper()
		t.Logf("%s: %v", what, err)
		switch msg := fmt.Sprint(err); {
		case err == nil:
			t.Errorf("%s succeeded; want an error", what)
		case strings.Contains(msg, "https"), strings.Contains(msg, "RequestID: ,"):
			t.Errorf("%s = %v; names https for an http endpoint, or empty fields", what, err)
		case !strings.Contains(msg, want):
			t.Errorf("%s = %v; want it to say %q", what, err, want)
		}
	}
	check("Put refused", c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo),
		"S3 PutObject: 403 Forbidden from http://"+s.Addr)
	var perm *backoff.PermanentError
	if err := c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo); !errors.As(err, &perm) || errorCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("Put refused = %v; want a permanent error with the SDK's code inside", err)
	}
	s.Stop()
	_, err = c.Exists(t.Context(), "x.narinfo")
	check("Exists on a stopped server", err, `S3 HeadObject: request send failed, Head "http://`+s.Addr)
}
