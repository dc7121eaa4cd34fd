package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"nixpush/nixstore"
	"nixpush/retry"
)

// MaxNarInfoSize bounds what is read of one narinfo: real ones are a few
// KiB even with thousands of references; anything larger is not a narinfo.
const MaxNarInfoSize = 4 << 20

// ParseError is a narinfo that cannot be used. StorePath is what its
// StorePath line says, when it has a readable one, so a repair knows what
// to re-push.
type ParseError struct {
	Key       string
	StorePath string
	Err       error
}

func (e *ParseError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// ParseNarInfo parses the narinfo stored under key, field by field as
// go-nix's narinfo.Parse does, into its NarInfo, and checks what a client
// relies on: a valid StorePath whose hash part is the key, a URL, a
// NarHash and a positive NarSize, syntactically valid references. Keys it
// does not know are ignored, as Nix ignores them. (narinfo.Parse itself
// refuses unknown keys and allocates a 1 MiB buffer per call: 10 GB of
// garbage for a 10,000-path cache.)
func ParseNarInfo(key string, text []byte) (*narinfo.NarInfo, error) {
	ni := &narinfo.NarInfo{}
	fail := func(err error) (*narinfo.NarInfo, error) {
		storePath := ""
		if strings.HasPrefix(ni.StorePath, nixstore.StoreDir+"/") {
			storePath = ni.StorePath
		}
		return nil, &ParseError{Key: key, StorePath: storePath, Err: err}
	}
	var errs []error
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		field, value, ok := strings.Cut(line, ": ")
		if !ok {
			errs = append(errs, fmt.Errorf("line %q is not \"Key: value\"", truncate(line)))
			continue
		}
		if err := setField(ni, field, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if len(errs) > 0 {
		return fail(errs[0])
	}
	if ni.Compression == "" {
		ni.Compression = "bzip2" // Nix's default when the field is missing
	}
	if err := ni.Check(); err != nil {
		return fail(err)
	}
	switch {
	case NarInfoKey(ni.StorePath) != key:
		return fail(fmt.Errorf("StorePath %s does not belong under this key", ni.StorePath))
	case ni.URL == "":
		return fail(errors.New("no URL"))
	case ni.NarHash == nil:
		return fail(errors.New("no NarHash"))
	case ni.NarSize == 0:
		return fail(errors.New("NarSize is 0"))
	}
	return ni, nil
}

// setField parses one field into ni.
func setField(ni *narinfo.NarInfo, field, value string) error {
	var err error
	switch field {
	case "StorePath":
		ni.StorePath = value
	case "URL":
		ni.URL = value
	case "Compression":
		ni.Compression = value
	case "FileHash":
		ni.FileHash, err = nixhash.ParseAny(value, nil)
	case "FileSize":
		ni.FileSize, err = strconv.ParseUint(value, 10, 64)
	case "NarHash":
		ni.NarHash, err = nixhash.ParseAny(value, nil)
	case "NarSize":
		ni.NarSize, err = strconv.ParseUint(value, 10, 64)
	case "References":
		ni.References = append(ni.References, strings.Fields(value)...)
	case "Deriver":
		if value != "unknown-deriver" {
			ni.Deriver = value
		}
	case "System":
		ni.System = value
	case "Sig":
		var sig signature.Signature
		if sig, err = signature.ParseSignature(value); err == nil {
			ni.Signatures = append(ni.Signatures, sig)
		}
	case "CA":
		ni.CA = value
	}
	return err
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ReadNarInfo gets and parses one narinfo, retrying transient errors for
// up to a minute. A missing narinfo is ErrNotFound; one that does
// not parse is a *ParseError.
func ReadNarInfo(ctx context.Context, cache Cache, key string) (*narinfo.NarInfo, error) {
	text, err := ReadSmall(ctx, cache, key, MaxNarInfoSize)
	if err != nil {
		return nil, err
	}
	return ParseNarInfo(key, text)
}

// ReadSmall reads a small object whole (a narinfo, a pin, a realisation),
// retrying transient errors. Missing is ErrNotFound.
func ReadSmall(ctx context.Context, cache Cache, key string, limit int64) ([]byte, error) {
	var text []byte
	err := retry.Reads.Do(ctx, func() error {
		r, err := cache.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return retry.Permanent(err)
		}
		if err != nil {
			return err
		}
		defer r.Close()
		text, err = io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		if int64(len(text)) > limit {
			return retry.Permanent(fmt.Errorf("read %s: larger than %d bytes", key, limit))
		}
		return nil
	})
	return text, err
}

// TrustedSigner returns the name of a key in keys whose signature of ni
// verifies, or "" when none does, and the names of all of ni's signatures.
// The fingerprint is the one Nix checks: references sorted, in case the
// narinfo lists them in another order.
func TrustedSigner(ni *narinfo.NarInfo, keys []signature.PublicKey) (signer string, names []string) {
	fingerprint := Fingerprint(ni)
	for _, sig := range ni.Signatures {
		names = append(names, sig.Name)
	}
	for _, sig := range ni.Signatures {
		for _, k := range keys {
			if k.Verify(fingerprint, sig) { // Verify checks the names match
				return k.Name, names
			}
		}
	}
	return "", names
}

// Fingerprint is what a narinfo's signatures sign, as Nix builds it
// (ValidPathInfo::fingerprint): "1;<store path>;<NAR hash, nix32>;<NAR
// size>;<references as full paths, sorted, comma-separated>". References
// are sorted here: Nix rejects a signature made over any other order.
// (go-nix's NarInfo.Fingerprint appends with += in a loop: quadratic in
// the references, 50 s for one narinfo with 100,000 of them.)
func Fingerprint(ni *narinfo.NarInfo) string {
	refs := slices.Sorted(slices.Values(ni.References))
	var b strings.Builder
	size := 80 + len(ni.StorePath)
	for _, r := range refs {
		size += len(nixstore.StoreDir) + 2 + len(r)
	}
	b.Grow(size)
	b.WriteString("1;")
	b.WriteString(ni.StorePath)
	b.WriteByte(';')
	b.WriteString(ni.NarHash.Format(nixhash.NixBase32, true))
	b.WriteByte(';')
	b.WriteString(strconv.FormatUint(ni.NarSize, 10))
	b.WriteByte(';')
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(nixstore.StoreDir)
		b.WriteByte('/')
		b.WriteString(r)
	}
	return b.String()
}
