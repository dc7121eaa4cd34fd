package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/nixstore"
)

// realisationDoc is a realisations/<id>.doi document as Nix writes it.
type realisationDoc struct {
	ID                    string            `json:"id"`
	OutPath               string            `json:"outPath"`
	Signatures            []string          `json:"signatures"`
	DependentRealisations map[string]string `json:"dependentRealisations"`
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

func (v *verifier) checkRealisation(key string, text []byte) (Problem, bool) {
	var doc realisationDoc
	if err := json.Unmarshal(text, &doc); err != nil || doc.ID == "" || doc.OutPath == "" {
		return Problem{Kind: BadRealisation, Key: key, Detail: "does not parse as a realisation"}, true
	}
	out := cache.StorePathOfRef(doc.OutPath)
	if _, ok := v.narinfos[cache.NarInfoKeyOfRef(out)]; !ok {
		return Problem{Kind: BadRealisation, Key: key, Path: out, Detail: "its output's narinfo is missing"}, true
	}
	if len(doc.Signatures) == 0 || len(v.keys) == 0 {
		return Problem{}, false
	}
	r := nixstore.Realisation{ID: doc.ID, OutPath: out, DependentRealisations: map[string]string{}}
	for id, p := range doc.DependentRealisations {
		r.DependentRealisations[id] = cache.StorePathOfRef(p)
	}
	fp, err := cache.RealisationFingerprint(r)
	if err != nil {
		return Problem{Kind: BadRealisation, Key: key, Detail: err.Error()}, true
	}
	for _, s := range doc.Signatures {
		sig, err := signature.ParseSignature(s)
		if err != nil {
			continue
		}
		for _, k := range v.keys {
			if k.Verify(fp, sig) {
				return Problem{}, false
			}
		}
	}
	return Problem{Kind: BadRealisation, Key: key, Path: out, Detail: fmt.Sprintf("none of its %d signatures is by a trusted key", len(doc.Signatures))}, true
}
