package cachecheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"nixpush/nixstore"
	"nixpush/uploader"
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
	case uploader.NarInfoKey(ni.StorePath) != key:
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
// up to a minute. A missing narinfo is uploader.ErrNotFound; one that does
// not parse is a *ParseError.
func ReadNarInfo(ctx context.Context, cache uploader.Cache, key string) (*narinfo.NarInfo, error) {
	text, err := ReadSmall(ctx, cache, key, MaxNarInfoSize)
	if err != nil {
		return nil, err
	}
	return ParseNarInfo(key, text)
}

// ReadSmall reads a small object whole (a narinfo, a pin, a realisation),
// retrying transient errors. Missing is uploader.ErrNotFound.
func ReadSmall(ctx context.Context, cache uploader.Cache, key string, limit int64) ([]byte, error) {
	var text []byte
	err := Retry(ctx, func() error {
		r, err := cache.Get(ctx, key)
		if errors.Is(err, uploader.ErrNotFound) {
			return backoff.Permanent(err)
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
			return backoff.Permanent(fmt.Errorf("read %s: larger than %d bytes", key, limit))
		}
		return nil
	})
	return text, err
}

// Retry runs op until it succeeds, fails permanently, ctx ends or a
// minute has passed: verify and gc read thousands of objects, and one
// network hiccup should not abort the run. The error returned is op's,
// unwrapped from backoff.Permanent.
func Retry(ctx context.Context, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxElapsedTime = time.Minute
	err := backoff.Retry(op, backoff.WithContext(b, ctx))
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return perm.Err
	}
	return err
}

// NarInfoKeyOfRef is the narinfo key of a reference as a narinfo lists it
// (a base name) or as a full store path.
func NarInfoKeyOfRef(ref string) string { return uploader.NarInfoKey(path.Base(ref)) }

// StorePathOfRef makes a narinfo reference (a base name) a full path.
func StorePathOfRef(ref string) string { return nixstore.StoreDir + "/" + path.Base(ref) }
