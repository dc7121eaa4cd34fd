package cache

import (
	"path"
	"strings"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/nixstore"
)

// NarInfoKey is the cache key of a store path's narinfo: the 32-character
// hash part of its name.
func NarInfoKey(storePath string) string {
	hashPart, _, _ := strings.Cut(path.Base(storePath), "-")
	return hashPart + ".narinfo"
}

// NarInfoKeyOfRef is the narinfo key of a reference as a narinfo lists it
// (a base name) or as a full store path.
func NarInfoKeyOfRef(ref string) string { return NarInfoKey(path.Base(ref)) }

// StorePathOfRef makes a narinfo reference (a base name) a full path.
func StorePathOfRef(ref string) string { return nixstore.StoreDir + "/" + path.Base(ref) }

// NARKeyPrefix is what every object name of a NAR starts with.
func NARKeyPrefix(info *nixstore.PathInfo) string {
	return "nar/" + nixbase32.EncodeToString(info.NarHash)
}

// TypeListing is the content type Nix 2.8 gives a <hash>.ls listing.
const TypeListing = "application/json"

// ListingKey names the NAR listing of a store path as Nix does with
// write-nar-listing=1: "<hash part>.ls", next to its narinfo.
func ListingKey(storePath string) string {
	hashPart, _, _ := strings.Cut(path.Base(storePath), "-")
	return hashPart + ".ls"
}

// TypeBuildLog is the content type `nix store copy-log` gives a log.
const TypeBuildLog = "text/plain; charset=utf-8"

// BuildLogKey names a derivation's build log as Nix does:
// "log/<drv basename>", e.g. "log/iq8q…-hello.drv".
func BuildLogKey(drvPath string) string {
	return "log/" + path.Base(drvPath)
}

// TypeRealisation is the content type Nix 2.8 gives a .doi object.
const TypeRealisation = "application/json"

// RealisationKey names a realisation's object as Nix does:
// "realisations/sha256:<base16>!<output>.doi".
func RealisationKey(r nixstore.Realisation) string {
	return "realisations/" + r.ID + ".doi"
}
