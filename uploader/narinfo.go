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

// NARKey names a new NAR object: "nar/<NAR hash>-<random>.nar<ext>".
//
// A narinfo must describe the object its URL names, whatever machines and
// settings share the cache. The compressed bytes of one NAR differ with
// the compression level, the encoder's concurrency (it follows the
// machine's cores) and the library's version, so a name derived from the
// NAR alone would let machine B overwrite machine A's object under A's
// narinfo with bytes of another size and hash. Nix avoids that by naming
// objects by their file hash, which is known only once the whole NAR is
// compressed; nixpush streams instead, so it never overwrites: every
// upload writes a name of its own (the NAR hash part keeps names readable
// and tells which NAR an object holds), and its narinfo describes exactly
// what it wrote. The cost is that a NAR pushed twice (two machines racing,
// or a retry after a crash between NAR and narinfo) leaves an object no
// narinfo names: gc removes such orphans, verify reports them as garbage.
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
