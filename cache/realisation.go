package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/nixstore"
	"nixpush/retry"
)

// realisationJSON is a .doi document. Nix 2.8 writes it with nlohmann::json,
// whose objects are sorted maps: the fields are declared in that order, and
// Go sorts the map's keys the same way.
type realisationJSON struct {
	DependentRealisations map[string]string `json:"dependentRealisations"`
	ID                    string            `json:"id"`
	OutPath               string            `json:"outPath"`
	Signatures            *[]string         `json:"signatures,omitempty"` // nil only in the fingerprint
}

// RealisationDoc returns the .doi object for r, byte for byte what Nix 2.8
// writes (BinaryCacheStore::registerDrvOutput), with r's signatures from
// the Nix DB plus one per key. Paths in it are base names, as Nix writes
// them.
func RealisationDoc(r nixstore.Realisation, keys []signature.SecretKey) ([]byte, error) {
	doc := newRealisationJSON(r)
	fingerprint, err := marshalNixJSON(doc)
	if err != nil {
		return nil, err
	}
	sigs := slices.Clone(r.Signatures)
	for _, k := range keys {
		sig, err := k.Sign(nil, string(fingerprint))
		if err != nil {
			return nil, retry.Permanent(fmt.Errorf("sign realisation %s: %w", r.ID, err))
		}
		sigs = append(sigs, sig.String())
	}
	// A set in Nix: sorted, and signing twice with one key (ed25519 is
	// deterministic) adds nothing.
	slices.Sort(sigs)
	sigs = slices.Compact(sigs)
	if sigs == nil {
		sigs = []string{} // "signatures":[] as Nix writes, never null
	}
	doc.Signatures = &sigs
	return marshalNixJSON(doc)
}

// RealisationFingerprint is what a realisation's signatures sign (Nix 2.8's
// Realisation::fingerprint): its JSON without the signatures field.
func RealisationFingerprint(r nixstore.Realisation) (string, error) {
	b, err := marshalNixJSON(newRealisationJSON(r))
	return string(b), err
}

// newRealisationJSON is r's document without signatures.
func newRealisationJSON(r nixstore.Realisation) realisationJSON {
	doc := realisationJSON{
		DependentRealisations: map[string]string{},
		ID:                    r.ID,
		OutPath:               path.Base(r.OutPath),
	}
	for id, p := range r.DependentRealisations {
		doc.DependentRealisations[id] = path.Base(p)
	}
	return doc
}

// marshalNixJSON encodes v compactly, escaping as nlohmann::json::dump
// does: no HTML escaping. (Both escape control characters alike; they
// differ only on U+2028/U+2029 and invalid UTF-8, which store path names,
// hashes and output names cannot contain.)
func marshalNixJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode realisation: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
