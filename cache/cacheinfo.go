package cache

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/nixstore"
	"nixpush/retry"
)

// CacheInfoKey is the object every binary cache has at its root.
const CacheInfoKey = "nix-cache-info"

// Keys nixpush adds to nix-cache-info. Nix skips keys it does not know
// (BinaryCacheStore::init reads only StoreDir, WantMassQuery and
// Priority, alike in 2.8, run in the tests, and 2.35), so these are for
// nixpush alone.
const (
	// IDKey names this cache: a random value written once, when nixpush
	// first finds the cache. A cache wiped and made again under the same
	// URL gets another, which tells a machine's memo that it describes
	// a cache that is gone.
	IDKey = "NixpushCacheId"
	// SignersKey lists the keys nixpush signs this cache's narinfos
	// with, so that a push without a key can refuse to add unsigned
	// narinfos that clients trusting those keys would reject.
	SignersKey = "NixpushSignedBy"
)

// CacheInfo is a parsed nix-cache-info.
type CacheInfo struct {
	StoreDir string   // "" when the file does not say (Nix then assumes its own)
	ID       string   // IDKey, or ""
	Signers  []string // SignersKey, sorted
	text     string   // the file as read, to keep every other line when rewritten
}

// NewCacheInfo is the nix-cache-info of a new cache, with an ID of its own.
func NewCacheInfo(priority int, wantMassQuery bool) CacheInfo {
	mass := "0"
	if wantMassQuery {
		mass = "1"
	}
	return CacheInfo{
		StoreDir: nixstore.StoreDir,
		text:     fmt.Sprintf("StoreDir: %s\nWantMassQuery: %s\nPriority: %d\n", nixstore.StoreDir, mass, priority),
	}.WithID(newCacheID())
}

// newCacheID is 20 random bytes in Nix's base32, like a store path hash.
func newCacheID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return nixbase32.EncodeToString(b[:])
}

// ParseCacheInfo reads nix-cache-info as Nix does: "Key: value" lines,
// the key before the first colon, the value trimmed; lines without a
// colon and unknown keys are skipped.
func ParseCacheInfo(text string) CacheInfo {
	info := CacheInfo{text: text}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "StoreDir":
			info.StoreDir = v
		case IDKey:
			info.ID = v
		case SignersKey:
			info.Signers = strings.Fields(v)
			slices.Sort(info.Signers)
		}
	}
	return info
}

// String is the file's text.
func (i CacheInfo) String() string { return i.text }

// WithID returns the file with IDKey set to id, every other line kept.
func (i CacheInfo) WithID(id string) CacheInfo { return i.with(IDKey, id) }

// WithSigners returns the file with signers added to SignersKey.
func (i CacheInfo) WithSigners(signers []string) CacheInfo {
	all := slices.Concat(i.Signers, signers)
	slices.Sort(all)
	return i.with(SignersKey, strings.Join(slices.Compact(all), " "))
}

// SignedBy reports whether SignersKey lists every one of names.
func (i CacheInfo) SignedBy(names []string) bool {
	for _, n := range names {
		if !slices.Contains(i.Signers, n) {
			return false
		}
	}
	return true
}

// with sets one key: its line is replaced, or one is added at the end.
func (i CacheInfo) with(key, value string) CacheInfo {
	var lines []string
	for _, line := range strings.Split(strings.TrimRight(i.text, "\n"), "\n") {
		if k, _, _ := strings.Cut(line, ":"); k != key && line != "" {
			lines = append(lines, line)
		}
	}
	lines = append(lines, key+": "+value)
	return ParseCacheInfo(strings.Join(lines, "\n") + "\n")
}

// CheckStoreDir refuses a cache made for another store directory: Nix
// would ignore every path in it.
func (i CacheInfo) CheckStoreDir(c Cache) error {
	if i.StoreDir != "" && i.StoreDir != nixstore.StoreDir {
		return retry.Permanent(fmt.Errorf("cache %s is for store %s, not %s", c, i.StoreDir, nixstore.StoreDir))
	}
	return nil
}

// ReadCacheInfo reads the cache's nix-cache-info; ErrNotFound when it has
// none (a new cache, or one wiped).
func ReadCacheInfo(ctx context.Context, c Cache) (CacheInfo, error) {
	text, err := ReadSmall(ctx, c, CacheInfoKey, 64<<10)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("read nix-cache-info of %s: %w", c, err)
		}
		return CacheInfo{}, err
	}
	return ParseCacheInfo(string(text)), nil
}

// WriteCacheInfo writes nix-cache-info.
func WriteCacheInfo(ctx context.Context, c Cache, info CacheInfo) error {
	if err := c.Put(ctx, CacheInfoKey, strings.NewReader(info.String()), TypeCacheInfo); err != nil {
		return fmt.Errorf("write nix-cache-info of %s: %w", c, err)
	}
	return nil
}

// ErrNotACache means a URL names no binary cache: it has no
// nix-cache-info, which Nix reads first and every cache has.
var ErrNotACache = errors.New("not a binary cache (no nix-cache-info)")

// RequireCacheInfo is the readers' check (verify, gc, pin): the cache
// exists and is for this store directory. It writes nothing.
func RequireCacheInfo(ctx context.Context, c Cache) error {
	info, err := ReadCacheInfo(ctx, c)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s is %w", c, ErrNotACache)
	}
	if err != nil {
		return err
	}
	return info.CheckStoreDir(c)
}

// EnsureCacheInfo creates nix-cache-info when the cache has none, and
// refuses a cache made for another store directory, returning what the
// cache's nix-cache-info says now.
func EnsureCacheInfo(ctx context.Context, c Cache, priority int) (CacheInfo, error) {
	info, err := ReadCacheInfo(ctx, c)
	if errors.Is(err, ErrNotFound) {
		info = NewCacheInfo(priority, true)
		return info, WriteCacheInfo(ctx, c, info)
	}
	if err != nil {
		return info, err
	}
	return info, info.CheckStoreDir(c)
}
