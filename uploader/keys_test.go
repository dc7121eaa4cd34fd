package uploader_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/uploader"
)

func TestWriteKeyPair(t *testing.T) {
	dir := t.TempDir()
	sec, pubFile := filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")
	pub, err := uploader.WriteKeyPair("nixpush-test-1", sec, pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sec); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	b, err := os.ReadFile(pubFile)
	if err != nil || string(b) != pub.String() || !strings.HasPrefix(pub.String(), "nixpush-test-1:") {
		t.Errorf("public key file %q, %v; returned %s", b, err, pub)
	}
	k, err := uploader.LoadSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	if k.ToPublicKey().String() != pub.String() {
		t.Errorf("loaded key's public half %s, want %s", k.ToPublicKey(), pub)
	}
	// Never overwrite.
	if _, err := uploader.WriteKeyPair("other", sec, filepath.Join(dir, "other.pub")); err == nil {
		t.Error("WriteKeyPair overwrote an existing secret key")
	}
	if got, _ := os.ReadFile(pubFile); string(got) != pub.String() {
		t.Error("public key file changed")
	}
	for _, name := range []string{"", "a:b"} {
		if _, err := uploader.WriteKeyPair(name, filepath.Join(dir, "n.sec"), filepath.Join(dir, "n.pub")); err == nil {
			t.Errorf("WriteKeyPair(%q) accepted the name", name)
		}
	}
}

func TestLoadSigningKey(t *testing.T) {
	// As Nix writes it (no trailing newline) and with one added.
	secFile, _, pub := nixtest.Keygen(t, "load-test")
	b, err := os.ReadFile(secFile)
	if err != nil {
		t.Fatal(err)
	}
	withNL := filepath.Join(t.TempDir(), "nl.sec")
	if err := os.WriteFile(withNL, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{secFile, withNL} {
		k, err := uploader.LoadSigningKey(f)
		if err != nil || k.ToPublicKey().String() != pub {
			t.Errorf("LoadSigningKey(%s) = %v, %v; want public key %s", f, k.ToPublicKey(), err, pub)
		}
	}

	// The public key is not a secret key; the error names the file only.
	_, pubFile, _ := nixtest.Keygen(t, "load-test-2")
	pubText, _ := os.ReadFile(pubFile)
	_, err = uploader.LoadSigningKey(pubFile)
	if err == nil || !strings.Contains(err.Error(), pubFile) || strings.Contains(err.Error(), strings.TrimSpace(string(pubText))[len("load-test-2:"):]) {
		t.Errorf("LoadSigningKey(public key) = %v", err)
	}
	if _, err := uploader.LoadSigningKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadSigningKey(missing file) succeeded")
	}
}
