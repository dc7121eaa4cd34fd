package verify

import (
	"bytes"
	"compress/bzip2"
	"context"
	_ "crypto/sha256" // hash functions narinfos may name
	_ "crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/nixhash"
	"github.com/ulikunitz/xz"

	"nixpush/cache"
	"nixpush/retry"
)

// errCannotDecompress: a compression Nix knows (lzip, lz4, ...) that
// verify cannot read.
var errCannotDecompress = errors.New("cannot decompress")

// checkNAR downloads the NAR of ni, checks FileSize and FileHash of the
// object as stored, decompresses it and checks NarSize and NarHash. It
// returns what is wrong ("" when nothing), or an error when the NAR could
// not be read from the cache (a transient failure, not a verdict).
func checkNAR(ctx context.Context, c cache.Cache, key string, ni *narinfo.NarInfo) (string, error) {
	var verdict string
	err := retry.Reads.Do(ctx, func() error {
		r, err := c.Get(ctx, key)
		if errors.Is(err, cache.ErrNotFound) {
			return retry.Permanent(err)
		}
		if err != nil {
			return fmt.Errorf("read NAR %s: %w", key, err)
		}
		defer r.Close()
		verdict, err = checkNARStream(r, ni)
		return err
	})
	return verdict, err
}

func checkNARStream(r io.Reader, ni *narinfo.NarInfo) (string, error) {
	src := &cache.SourceReader{R: r}
	fileHash := newHasher(ni.FileHash)
	var fileSize countWriter
	stored := io.TeeReader(src, io.MultiWriter(fileHash, &fileSize))

	nar, closeNAR, err := decompress(ni.Compression, stored)
	if err != nil {
		if errors.Is(err, errCannotDecompress) {
			return "", retry.Permanent(err)
		}
		return "does not decompress as " + ni.Compression + ": " + err.Error(), nil
	}
	defer closeNAR()
	narHash := newHasher(ni.NarHash)
	var narSize countWriter
	_, err = io.Copy(io.MultiWriter(narHash, &narSize), nar)
	if src.Err != nil {
		return "", fmt.Errorf("read NAR %s: %w", ni.URL, src.Err)
	}
	if err != nil {
		return "does not decompress as " + ni.Compression + ": " + err.Error(), nil
	}
	// Read the rest: FileHash covers the whole object, trailing bytes too.
	if _, err := io.Copy(io.Discard, stored); err != nil {
		return "", fmt.Errorf("read NAR %s: %w", ni.URL, err)
	}
	switch {
	case ni.FileSize > 0 && uint64(fileSize) != ni.FileSize:
		return fmt.Sprintf("object is %d bytes, FileSize says %d", fileSize, ni.FileSize), nil
	case ni.FileHash != nil && !bytes.Equal(fileHash.Sum(nil), ni.FileHash.Digest()):
		return "FileHash does not match the object", nil
	case uint64(narSize) != ni.NarSize:
		return fmt.Sprintf("NAR is %d bytes, NarSize says %d", narSize, ni.NarSize), nil
	case !bytes.Equal(narHash.Sum(nil), ni.NarHash.Digest()):
		return "NarHash does not match the NAR", nil
	}
	return "", nil
}

// decompress opens the decompressor for a narinfo's Compression (missing
// means bzip2, as for Nix).
func decompress(method string, r io.Reader) (io.Reader, func(), error) {
	switch method {
	case "none":
		return r, func() {}, nil
	case "zstd":
		// One goroutine and low memory: several NARs are checked at once.
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case "xz":
		d, err := xz.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return d, func() {}, nil
	case "br":
		return brotli.NewReader(r), func() {}, nil
	case "bzip2", "":
		return bzip2.NewReader(r), func() {}, nil
	}
	return nil, nil, fmt.Errorf("%w %s", errCannotDecompress, method)
}

// newHasher returns the hash function of h, or one that is never compared
// when h is absent.
func newHasher(h *nixhash.HashWithEncoding) hash.Hash {
	if h == nil {
		return discardHash{}
	}
	return h.Algo().Func().New()
}

type discardHash struct{ hash.Hash }

func (discardHash) Write(p []byte) (int, error) { return len(p), nil }
func (discardHash) Sum(b []byte) []byte         { return b }

type countWriter uint64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
