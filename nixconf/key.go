package nixconf

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
)

// ParseKey reads a cache's public key given either as "NAME:BASE64" (the
// contents of the .pub file nix-store --generate-binary-cache-key or
// nixpush keygen writes) or as the name of such a file. The key must be
// NAME, ':', then the base64 of a 32-byte ed25519 public key. Neither the
// argument nor the file's contents appear in errors: a secret key given by
// mistake must not end up in a terminal's scrollback or a log.
func ParseKey(arg string) (signature.PublicKey, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return signature.PublicKey{}, errors.New("public key is empty: give NAME:BASE64 or the .pub file")
	}
	what := "the public key given"
	text := arg
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return signature.PublicKey{}, fmt.Errorf("read public key: %w", err)
		}
		what, text = "key file "+arg, strings.TrimSpace(string(b))
	} else if !strings.Contains(arg, ":") {
		return signature.PublicKey{}, fmt.Errorf("public key: no file %s, and not of the form NAME:BASE64", arg)
	}
	return parseKeyText(text, what)
}

func parseKeyText(text, what string) (signature.PublicKey, error) {
	if _, err := signature.LoadSecretKey(text); err == nil {
		return signature.PublicKey{}, fmt.Errorf("%s is a secret key: give the public one (the .pub file), and keep the secret key off client machines", what)
	}
	pub, err := signature.ParsePublicKey(text)
	if err != nil {
		return signature.PublicKey{}, fmt.Errorf("%s is not a Nix public key: want NAME:BASE64 of 32 bytes, as in the .pub file of nix-store --generate-binary-cache-key", what)
	}
	if strings.ContainsAny(pub.Name, " \t\r\n#") {
		return signature.PublicKey{}, fmt.Errorf("%s has white space or '#' in its name, which nix.conf cannot hold", what)
	}
	return pub, nil
}
