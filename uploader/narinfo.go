package uploader

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path"
	"sort"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/nix-community/go-nix/pkg/nixhash"

	"nixpush/cache"
	"nixpush/nixstore"
)

// NAR objects are named so that a narinfo always describes exactly the
// object its URL names, whatever machines and settings share the cache,
// and so that the same path pushed by many machines is stored once.
//
// The compressed bytes of one NAR differ with the method, the level and
// the encoder's version, so a name derived from the NAR alone would let
// machine B overwrite machine A's object under A's narinfo with bytes of
// another size and hash. Nix avoids that by naming objects by their file
// hash, known only once the whole NAR is compressed; nixpush streams
// instead. So the name is derived from what determines the bytes:
//
//	nar/<NAR hash>-<encoder>.nar<ext>      (ContentNARKey)
//
// where <encoder> is a digest of the method, level and encoder version
// (Compression.EncoderID). The encoders are configured so that their
// output depends on nothing else (not on the machine's cores, nor on how
// the stream is cut into writes: see NewWriter), so every writer of one
// name writes the same bytes, and the narinfo each writes describes the
// object whoever won.
//
// That is trusted only where the server proves it: these names are
// written with a conditional create (If-None-Match: *, or link(2) for a
// directory), so an object is never overwritten, and a writer that finds
// its name taken checks the object before its narinfo names it (see
// Uploader.putNAR). Where the server cannot create conditionally (a
// WebDAV server, Garage), a name of its own per upload is used instead:
//
//	nar/<NAR hash>-<random>.nar<ext>       (NARKey)
//
// A NAR uploaded twice under such names (two machines racing, a crash
// between NAR and narinfo) leaves an object no narinfo names: gc removes
// such orphans, verify reports them as garbage.

// ContentNARKey names a NAR by its NAR hash and the encoder that
// compresses it: every upload of the same path with the same settings
// writes the same bytes under this name.
func ContentNARKey(info *nixstore.PathInfo, c Compression) string {
	return cache.NARKeyPrefix(info) + "-" + c.EncoderID() + ".nar" + c.Ext()
}

// NARKey names a NAR object of its own, for an upload that cannot rely
// on a conditional create (see above).
func NARKey(info *nixstore.PathInfo, c Compression) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return cache.NARKeyPrefix(info) + "-" + nixbase32.EncodeToString(r[:]) + ".nar" + c.Ext()
}

// Uploaded describes the compressed NAR object written for a path.
type Uploaded struct {
	Key         string
	Compression Compression
	FileHash    [sha256.Size]byte
	FileSize    uint64
	Listing     []byte // the .ls listing, when the Uploader makes them
}

// NewNarInfo builds the narinfo for a path whose NAR is in the cache,
// keeping the signatures already in the Nix DB and adding one per key.
func NewNarInfo(info *nixstore.PathInfo, nar Uploaded, keys []signature.SecretKey) (*narinfo.NarInfo, error) {
	ni := &narinfo.NarInfo{
		StorePath:   info.Path,
		URL:         nar.Key,
		Compression: nar.Compression.Method,
		FileHash:    nixhash.MustNewHashWithEncoding(nixhash.SHA256, nar.FileHash[:], nixhash.NixBase32, true),
		FileSize:    nar.FileSize,
		NarHash:     nixhash.MustNewHashWithEncoding(nixhash.SHA256, info.NarHash, nixhash.NixBase32, true),
		NarSize:     info.NarSize,
		CA:          info.CA,
	}
	for _, ref := range info.References {
		ni.References = append(ni.References, path.Base(ref))
	}
	// The fingerprint lists references in sorted order; Nix rejects a
	// signature made over any other order.
	sort.Strings(ni.References)
	if info.Deriver != "" {
		ni.Deriver = path.Base(info.Deriver)
	}

	ours := map[string]bool{}
	for _, k := range keys {
		ours[k.ToPublicKey().Name] = true
	}
	for _, s := range info.Sigs {
		sig, err := signature.ParseSignature(s)
		if err != nil || ours[sig.Name] {
			continue // unreadable, or about to be made afresh below
		}
		ni.Signatures = append(ni.Signatures, sig)
	}
	fingerprint := cache.Fingerprint(ni)
	for _, k := range keys {
		sig, err := k.Sign(nil, fingerprint)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", info.Path, err)
		}
		ni.Signatures = append(ni.Signatures, sig)
	}
	return ni, nil
}
