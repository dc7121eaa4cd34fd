package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// realisationDoc is a realisations/<id>.doi document as Nix 2.4–2.34
// write it.
type realisationDoc struct {
	ID                    string            `json:"id"`
	OutPath               string            `json:"outPath"`
	Signatures            []string          `json:"signatures"`
	DependentRealisations map[string]string `json:"dependentRealisations"`
}

// isRealisationKey reports whether a listed key is a realisation in
// either format (realisations/ or build-trace-v2/).
func isRealisationKey(key string) bool {
	if strings.HasPrefix(key, "realisations/") && strings.HasSuffix(key, ".doi") {
		return true
	}
	_, _, ok := cache.ParseBuildTraceKey(key)
	return ok
}

// checkRealisations checks every listed realisation: it parses, its
// output's narinfo is in the cache (a client that finds the realisation
// fetches that narinfo next), and its signatures, if any, verify with a
// trusted key.
func (v *verifier) checkRealisations(ctx context.Context, keys []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.opts.Jobs)
	for _, key := range keys {
		g.Go(func() error {
			text, err := cache.ReadSmall(gctx, v.cache, key, 1<<20)
			if errors.Is(err, cache.ErrNotFound) {
				return nil // deleted since the listing
			}
			if err != nil {
				return err
			}
			if p, bad := v.checkRealisation(key, text); bad {
				v.mu.Lock()
				v.report.add(p)
				v.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// checkRealisation checks one realisation object of either format.
func (v *verifier) checkRealisation(key string, text []byte) (Problem, bool) {
	var (
		out, fp string
		sigs    []signature.Signature
	)
	if drv, output, ok := cache.ParseBuildTraceKey(key); ok {
		base, s, err := cache.ParseBuildTraceDoc(text)
		if err != nil {
			return Problem{Kind: BadRealisation, Key: key, Detail: err.Error()}, true
		}
		out, sigs = cache.StorePathOfRef(base), s
		fp, err = cache.BuildTraceFingerprint(drv, output, out)
		if err != nil {
			return Problem{Kind: BadRealisation, Key: key, Detail: err.Error()}, true
		}
	} else {
		var doc realisationDoc
		if err := json.Unmarshal(text, &doc); err != nil || doc.ID == "" || doc.OutPath == "" {
			return Problem{Kind: BadRealisation, Key: key, Detail: "does not parse as a realisation"}, true
		}
		out = cache.StorePathOfRef(doc.OutPath)
		r := nixstore.Realisation{ID: doc.ID, OutPath: out, DependentRealisations: map[string]string{}}
		for id, p := range doc.DependentRealisations {
			r.DependentRealisations[id] = cache.StorePathOfRef(p)
		}
		var err error
		if fp, err = cache.RealisationFingerprint(r); err != nil {
			return Problem{Kind: BadRealisation, Key: key, Detail: err.Error()}, true
		}
		for _, s := range doc.Signatures {
			if sig, err := signature.ParseSignature(s); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	if _, ok := v.narinfos[cache.NarInfoKeyOfRef(out)]; !ok {
		return Problem{Kind: BadRealisation, Key: key, Path: out, Detail: "its output's narinfo is missing"}, true
	}
	if len(sigs) == 0 || len(v.keys) == 0 {
		return Problem{}, false
	}
	for _, sig := range sigs {
		for _, k := range v.keys {
			if k.Verify(fp, sig) {
				return Problem{}, false
			}
		}
	}
	return Problem{Kind: BadRealisation, Key: key, Path: out, Detail: fmt.Sprintf("none of its %d signatures is by a trusted key", len(sigs))}, true
}

// checkLocalRealisations reports the realisations of Options.Realisations
// whose output is in the cache (in the verified closures) but that the
// cache lacks in one of its formats. listed, in whole-cache mode, is the
// set of realisation keys listed; otherwise each key is asked for.
func (v *verifier) checkLocalRealisations(ctx context.Context, listed map[string]bool) error {
	type want struct{ key, out, id string }
	var wants []want
	for out, rs := range v.opts.Realisations {
		if !v.holds(out) {
			continue
		}
		for _, r := range rs {
			for _, key := range cache.RealisationKeys(r) {
				wants = append(wants, want{key, out, r.ID})
			}
		}
	}
	missing := make([]bool, len(wants))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.opts.Jobs)
	for i, w := range wants {
		if listed != nil {
			missing[i] = !listed[w.key]
			continue
		}
		g.Go(func() error {
			ok, err := v.cache.Exists(gctx, w.key)
			missing[i] = !ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("check realisations: %w", err)
	}
	for i, w := range wants {
		if missing[i] {
			v.report.add(Problem{Kind: MissingRealisation, Key: w.key, Path: w.out,
				Detail: "the local store's realisation " + w.id + " is not in the cache: a client with ca-derivations builds this output instead"})
		}
	}
	return nil
}

// holds reports whether the cache's narinfo of out was seen: listed
// (whole cache), or read while walking the closures.
func (v *verifier) holds(out string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := cache.NarInfoKey(out)
	if v.listed {
		_, ok := v.narinfos[key]
		return ok
	}
	return v.found[key]
}
