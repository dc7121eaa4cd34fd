package cachecheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nix-community/go-nix/pkg/narinfo"

	"nixpush/nixstore"
	"nixpush/uploader"
)

// maxNarInfoSize bounds what is read of one narinfo: real ones are a few
// KiB even with thousands of references; anything larger is not a narinfo.
const maxNarInfoSize = 4 << 20

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

// knownFields are the narinfo keys go-nix understands. Nix ignores keys it
// does not know, so lines with other keys are dropped before parsing
// rather than making the narinfo unreadable.
var knownFields = map[string]bool{
	"StorePath": true, "URL": true, "Compression": true, "FileHash": true, "FileSize": true,
	"NarHash": true, "NarSize": true, "References": true, "Deriver": true, "System": true,
	"Sig": true, "CA": true,
}

// ParseNarInfo parses the narinfo stored under key and checks what a
// client relies on: a valid StorePath whose hash part is the key, a URL,
// a NarHash and a positive NarSize, syntactically valid references.
func ParseNarInfo(key string, text []byte) (*narinfo.NarInfo, error) {
	var kept bytes.Buffer
	storePath := ""
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, maxNarInfoSize)
	for sc.Scan() {
		line := sc.Text()
		field, value, ok := strings.Cut(line, ": ")
		if ok && !knownFields[field] {
			continue
		}
		if field == "StorePath" && strings.HasPrefix(value, nixstore.StoreDir+"/") {
			storePath = value
		}
		kept.WriteString(line)
		kept.WriteByte('\n')
	}
	fail := func(err error) (*narinfo.NarInfo, error) {
		return nil, &ParseError{Key: key, StorePath: storePath, Err: err}
	}
	if err := sc.Err(); err != nil {
		return fail(err)
	}
	ni, err := narinfo.Parse(&kept)
	if err != nil {
		return fail(err)
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

// ReadNarInfo gets and parses one narinfo, retrying transient errors for
// up to a minute. A missing narinfo is uploader.ErrNotFound; one that does
// not parse is a *ParseError.
func ReadNarInfo(ctx context.Context, cache uploader.Cache, key string) (*narinfo.NarInfo, error) {
	text, err := ReadSmall(ctx, cache, key, maxNarInfoSize)
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
