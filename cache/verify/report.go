package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Kind names one sort of inconsistency. The names are stable: they appear
// in `nixpush verify --json`.
type Kind string

const (
	// BadNarInfo: a narinfo that does not parse, or lies (its StorePath
	// belongs under another key, it has no URL or NarHash).
	BadNarInfo Kind = "bad-narinfo"
	// MissingNAR: the narinfo's URL names no object.
	MissingNAR Kind = "missing-nar"
	// NARSize: the NAR object's size is not the narinfo's FileSize.
	NARSize Kind = "nar-size"
	// CorruptNAR (Options.Full only): the NAR's FileHash, NarHash or
	// NarSize is wrong, or it does not decompress.
	CorruptNAR Kind = "corrupt-nar"
	// MissingReference: a narinfo names a reference whose narinfo is
	// missing; Nix cannot substitute the referrer's closure.
	MissingReference Kind = "missing-reference"
	// MissingPath (Options.Paths only): a path asked for is not in the cache.
	MissingPath Kind = "missing-path"
	// Unsigned: a narinfo with no signature at all.
	Unsigned Kind = "unsigned"
	// UntrustedSignature: no signature verifies with a trusted key.
	UntrustedSignature Kind = "untrusted-signature"
	// OrphanNAR: a NAR no narinfo points to. Garbage (gc collects it), not
	// damage: Report.Whole ignores it.
	OrphanNAR Kind = "orphan-nar"
	// BadRealisation: a realisation (realisations/<id>.doi) that does not
	// parse, names an output whose narinfo is missing, or carries
	// signatures none of which verifies with a trusted key. (Unsigned
	// realisations are not an error: nix copy writes them so.)
	BadRealisation Kind = "bad-realisation"
	// MissingRealisation: a realisation the local store knows, of an
	// output the cache holds, is missing in one of the formats clients
	// read (realisations/ for Nix 2.4–2.34, build-trace-v2/ for 2.35
	// and later): a client with ca-derivations builds the output
	// instead of substituting it.
	MissingRealisation Kind = "missing-realisation"
)

// Problem is one inconsistency found.
type Problem struct {
	Kind   Kind   `json:"kind"`
	Key    string `json:"key"`            // the object concerned: a narinfo, or an orphan NAR
	Path   string `json:"path,omitempty"` // the store path concerned, when known
	Detail string `json:"detail"`
}

// Report is what Verify found.
type Report struct {
	Cache     string       `json:"cache"`
	NarInfos  int          `json:"narinfos"`  // narinfos read
	NARs      int          `json:"nars"`      // NAR objects listed (0 when verifying closures only)
	Signed    int          `json:"signed"`    // narinfos read that carry a signature
	Unchecked int          `json:"unchecked"` // NARs --full could not check (a compression it cannot read)
	Problems  []Problem    `json:"problems"`
	Counts    map[Kind]int `json:"counts"`
}

// Whole reports whether the cache is consistent: no problems but orphans.
func (r Report) Whole() bool {
	for k, n := range r.Counts {
		if k != OrphanNAR && n > 0 {
			return false
		}
	}
	return true
}

func (r *Report) add(p Problem) {
	r.Problems = append(r.Problems, p)
	if r.Counts == nil {
		r.Counts = map[Kind]int{}
	}
	r.Counts[p.Kind]++
}

// sort orders problems by kind, then key, so reports compare and read well.
func (r *Report) sort() {
	slices.SortFunc(r.Problems, func(a, b Problem) int {
		if a.Kind != b.Kind {
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// narinfoBroken: the narinfo exists and is unusable as it is, so it must
// be deleted and written afresh.
func narinfoBroken(k Kind) bool {
	switch k {
	case BadNarInfo, MissingNAR, NARSize, CorruptNAR, Unsigned, UntrustedSignature:
		return true
	}
	return false
}

// Repair lists, sorted and once each, the store paths to push again so the
// cache is whole: every path whose narinfo is broken, and every path
// missing as a reference or asked for. A bad narinfo with no readable
// StorePath cannot be named and is left out (PrepareRepair reports it).
func (r Report) Repair() []string {
	seen := map[string]bool{}
	var paths []string
	for _, p := range r.Problems {
		if p.Kind == OrphanNAR || p.Path == "" || seen[p.Path] {
			continue
		}
		seen[p.Path] = true
		paths = append(paths, p.Path)
	}
	slices.Sort(paths)
	return paths
}

// Deleter is what PrepareRepair needs of a cache.
type Deleter interface {
	Delete(ctx context.Context, keys []string) error
}

// PrepareRepair deletes the broken narinfos of paths that can be pushed
// again, so the uploader's existence check does not skip them, and
// returns the paths to push (Repair's list, filtered by canPush) and what
// cannot be repaired: paths canPush refuses (the local store lacks them)
// and keys of unreadable narinfos that name no store path. canPush nil
// means every path can be pushed.
//
// A narinfo of a path that cannot be pushed is left in place: it may still
// serve clients (e.g. one trusting another key), and deleting it would
// lose the path outright. Unreadable narinfos naming no path are deleted:
// they only make Nix fail. The bad NAR objects are not deleted: the
// uploader overwrites a NAR under the key it writes, and a NAR left behind
// under another name is an orphan for gc.
func PrepareRepair(ctx context.Context, cache Deleter, report *Report, canPush func(storePath string) bool) (push, unrepairable []string, err error) {
	var doomed []string
	for _, path := range report.Repair() {
		if canPush == nil || canPush(path) {
			push = append(push, path)
		} else {
			unrepairable = append(unrepairable, path)
		}
	}
	pushable := map[string]bool{}
	for _, p := range push {
		pushable[p] = true
	}
	for _, p := range report.Problems {
		switch {
		case !narinfoBroken(p.Kind):
		case p.Path == "":
			doomed = append(doomed, p.Key)
			unrepairable = append(unrepairable, p.Key)
		case pushable[p.Path]:
			doomed = append(doomed, p.Key)
		}
	}
	slices.Sort(doomed)
	doomed = slices.Compact(doomed)
	if err := cache.Delete(ctx, doomed); err != nil {
		return nil, nil, fmt.Errorf("delete broken narinfos: %w", err)
	}
	return push, unrepairable, nil
}
