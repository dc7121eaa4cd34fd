package cache

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/nixstore"
	"nixpush/retry"
)

// Nix 2.35 replaced realisations/<hash modulo>!<output>.doi with a build
// trace keyed by the resolved derivation's path (NixOS/nix #12464,
// #15289; binary-cache-store.cc makeRealisationPath): every Nix from 2.4
// to 2.34 reads only the first, 2.35 and later only the second, and no
// Nix writes both. nixpush writes both, so CA outputs substitute on old
// and new clients alike.

// BuildTracePrefix starts the key of every build trace entry.
const BuildTracePrefix = "build-trace-v2/"

// BuildTraceKey names a realisation's build trace entry:
// "build-trace-v2/<resolved .drv base name>/<output>.doi"; "" when the
// resolved derivation is not known (nixstore.Realisation.ResolvedDrv).
func BuildTraceKey(r nixstore.Realisation) string {
	if r.ResolvedDrv == "" {
		return ""
	}
	return BuildTracePrefix + path.Base(r.ResolvedDrv) + "/" + r.OutputName() + ".doi"
}

// ParseBuildTraceKey splits a build trace key into the derivation's base
// name and the output name.
func ParseBuildTraceKey(key string) (drv, output string, ok bool) {
	rest, ok := strings.CutPrefix(key, BuildTracePrefix)
	if !ok {
		return "", "", false
	}
	drv, file, ok := strings.Cut(rest, "/")
	output, isDoi := strings.CutSuffix(file, ".doi")
	return drv, output, ok && isDoi && strings.HasSuffix(drv, ".drv") && output != "" && !strings.Contains(output, "/")
}

// BuildTraceSignature is a signature as Nix 2.35 writes it in a build
// trace entry (signature-v2: an object, not "name:base64").
type BuildTraceSignature struct {
	KeyName string `json:"keyName"`
	Sig     string `json:"sig"`
}

// buildTraceValue is what a build trace entry holds: the value of the
// key/value pair (UnkeyedRealisation), the key being the object's name.
// Fields in nlohmann's order (sorted).
type buildTraceValue struct {
	OutPath    string                 `json:"outPath"`
	Signatures *[]BuildTraceSignature `json:"signatures,omitempty"` // nil only in the fingerprint
}

// buildTraceKeyJSON is the key half of the fingerprint.
type buildTraceKeyJSON struct {
	DrvPath    string `json:"drvPath"`
	OutputName string `json:"outputName"`
}

// BuildTraceFingerprint is what a build trace entry's signatures sign
// (Nix 2.35's Realisation::fingerprint): the keyed entry without its
// signatures, compact, e.g.
// {"key":{"drvPath":"<base>.drv","outputName":"out"},"value":{"outPath":"<base>"}}.
func BuildTraceFingerprint(drv, output, outPath string) (string, error) {
	b, err := marshalNixJSON(struct {
		Key   buildTraceKeyJSON `json:"key"`
		Value buildTraceValue   `json:"value"`
	}{buildTraceKeyJSON{path.Base(drv), output}, buildTraceValue{OutPath: path.Base(outPath)}})
	return string(b), err
}

// BuildTraceDoc returns the build trace entry of r, byte for byte what
// Nix 2.35 writes (BinaryCacheStore::registerDrvOutput), signed with
// keys. The signatures the Nix DB holds sign Nix 2.8's fingerprint, not
// this one, so they do not carry over.
func BuildTraceDoc(r nixstore.Realisation, keys []signature.SecretKey) ([]byte, error) {
	fp, err := BuildTraceFingerprint(r.ResolvedDrv, r.OutputName(), r.OutPath)
	if err != nil {
		return nil, err
	}
	sigs := []BuildTraceSignature{}
	for _, k := range keys {
		sig, err := k.Sign(nil, fp)
		if err != nil {
			return nil, retry.Permanent(fmt.Errorf("sign build trace entry of %s: %w", r.OutPath, err))
		}
		sigs = append(sigs, BuildTraceSignature{sig.Name, base64.StdEncoding.EncodeToString(sig.Data)})
	}
	// A set in Nix, ordered by key name, then signature.
	slices.SortFunc(sigs, func(a, b BuildTraceSignature) int {
		return strings.Compare(a.KeyName+":"+a.Sig, b.KeyName+":"+b.Sig)
	})
	sigs = slices.Compact(sigs)
	return marshalNixJSON(buildTraceValue{OutPath: path.Base(r.OutPath), Signatures: &sigs})
}

// ParseBuildTraceDoc reads a build trace entry as Nix 2.35 does: outPath
// is required; each signature may be an object or an old "name:base64"
// string. It returns the output's base name and the signatures.
func ParseBuildTraceDoc(b []byte) (outPath string, sigs []signature.Signature, err error) {
	var doc struct {
		OutPath    string            `json:"outPath"`
		Signatures []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.OutPath == "" {
		return "", nil, errors.New("does not parse as a build trace entry (no outPath)")
	}
	for _, raw := range doc.Signatures {
		var s string
		var o BuildTraceSignature
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case json.Unmarshal(raw, &o) == nil:
			s = o.KeyName + ":" + o.Sig
		default:
			return "", nil, errors.New("a signature is neither an object nor a string")
		}
		sig, err := signature.ParseSignature(s)
		if err != nil {
			return "", nil, fmt.Errorf("a signature does not parse: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return doc.OutPath, sigs, nil
}

// RealisationKeys are the keys a realisation is served under: its
// realisations/ object, and its build trace entry when the resolved
// derivation is known.
func RealisationKeys(r nixstore.Realisation) []string {
	keys := []string{RealisationKey(r)}
	if k := BuildTraceKey(r); k != "" {
		keys = append(keys, k)
	}
	return keys
}
