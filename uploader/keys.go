package uploader

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/retry"
)

// LoadSigningKey reads a secret key file in Nix's format
// ("<name>:<base64 of 64 bytes>", as `nix-store --generate-binary-cache-key`
// writes it). Errors name the file, never its contents.
func LoadSigningKey(file string) (signature.SecretKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return signature.SecretKey{}, retry.Permanent(fmt.Errorf("read signing key: %w", err))
	}
	k, err := signature.LoadSecretKey(strings.TrimSpace(string(b)))
	if err != nil {
		return signature.SecretKey{}, retry.Permanent(fmt.Errorf("signing key %s is not a Nix secret key (want NAME:BASE64, as nix-store --generate-binary-cache-key writes)", file))
	}
	// go-nix checks only the length. A key whose two halves (seed and
	// public key) disagree signs narinfos no client can verify, so prove
	// it: a signature must verify with the key's own public half.
	const probe = "nixpush signing key self-test"
	sig, err := k.Sign(nil, probe)
	if err != nil || !k.ToPublicKey().Verify(probe, sig) {
		return signature.SecretKey{}, retry.Permanent(fmt.Errorf("signing key %s is corrupt: its secret and public halves do not match", file))
	}
	return k, nil
}

// WriteKeyPair generates a key pair and writes it as Nix does: the secret
// key readable by the owner only. Existing files are never overwritten.
func WriteKeyPair(name, secretFile, publicFile string) (signature.PublicKey, error) {
	if err := CheckKeyName(name); err != nil {
		return signature.PublicKey{}, err
	}
	sec, pub, err := signature.GenerateKeypair(name, rand.Reader)
	if err != nil {
		return pub, fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(secretFile, sec.String(), 0o600); err != nil {
		return pub, err
	}
	if err := writeNew(publicFile, pub.String(), 0o644); err != nil {
		os.Remove(secretFile)
		return pub, err
	}
	return pub, nil
}

// CheckKeyName refuses a key name nix.conf could never trust: it splits
// trusted-public-keys at white space, a '#' starts a comment there, and
// ':' ends the name.
func CheckKeyName(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r == ':' || r == '#' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		return fmt.Errorf("key name %q must be non-empty, without white space, ':' or '#' (nix.conf could not trust it); e.g. cache.example.org-1", name)
	}
	return nil
}

// writeNew writes a file that must not exist yet, atomically: a temp file
// in the same directory linked into place, so a crash leaves either nothing
// or the whole key.
func writeNew(file, content string, mode os.FileMode) error {
	if _, err := os.Lstat(file); err == nil {
		return fmt.Errorf("write key: %s already exists", file)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".nixpush-key-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err == nil {
		_, err = tmp.WriteString(content)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), file) // fails if file appeared meanwhile
	}
	if err != nil {
		return fmt.Errorf("write key %s: %w", file, err)
	}
	return nil
}
