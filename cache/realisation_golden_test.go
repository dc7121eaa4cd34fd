package cache_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/cache"
	"nixpush/nixstore"
)

// golden reads a file of testdata (see testdata/README.md).
func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compact is JSON as nlohmann's dump() writes it: no spaces, keys in
// the order given (Nix's test data has them sorted already).
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestBuildTraceGolden: the build-trace-v2 value, fingerprint and
// signature of Nix 2.35's own test data, byte for byte.
func TestBuildTraceGolden(t *testing.T) {
	key, err := signature.LoadSecretKey("test-key:tU7tTvLcScf8pmz/eTV0BEtLmRsPpZfKaRcd0nCN+pysBZPHSeg61/u2oc7mIOewfuAY1V1BiX32homTaDJ2Jw==")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, outPath string }{
		{"simple", "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"},
		{"with-signature", "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := nixstore.Realisation{
				ID:          "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo",
				OutPath:     nixstore.StoreDir + "/" + tc.outPath,
				ResolvedDrv: nixstore.StoreDir + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv",
			}
			if got, want := cache.BuildTraceKey(r), "build-trace-v2/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv/foo.doi"; got != want {
				t.Errorf("key %q, want %q", got, want)
			}
			fp, err := cache.BuildTraceFingerprint(r.ResolvedDrv, "foo", r.OutPath)
			if err != nil {
				t.Fatal(err)
			}
			if want := string(golden(t, "nix-2.35.2/"+tc.name+"-fingerprint.txt")); fp != want {
				t.Errorf("fingerprint\n%s\nwant\n%s", fp, want)
			}
			var sig cache.BuildTraceSignature
			if err := json.Unmarshal(golden(t, "nix-2.35.2/"+tc.name+"-sig.json"), &sig); err != nil {
				t.Fatal(err)
			}
			doc, err := cache.BuildTraceDoc(r, []signature.SecretKey{key})
			if err != nil {
				t.Fatal(err)
			}
			want := `{"outPath":"` + tc.outPath + `","signatures":[{"keyName":"test-key","sig":"` + sig.Sig + `"}]}`
			if string(doc) != want {
				t.Errorf("entry\n%s\nwant\n%s", doc, want)
			}
			outPath, sigs, err := cache.ParseBuildTraceDoc(doc)
			if err != nil || outPath != tc.outPath || len(sigs) != 1 || !key.ToPublicKey().Verify(fp, sigs[0]) {
				t.Errorf("ParseBuildTraceDoc = %q, %v, %v: want %s and a signature that verifies", outPath, sigs, err, tc.outPath)
			}
		})
	}
	// Unsigned: the value of unkeyed-simple.json, compact.
	doc, err := cache.BuildTraceDoc(nixstore.Realisation{
		ID: "sha256:00!foo", OutPath: nixstore.StoreDir + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo",
		ResolvedDrv: nixstore.StoreDir + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv",
	}, nil)
	if want := compact(t, golden(t, "nix-2.35.2/unkeyed-simple.json")); err != nil || string(doc) != want {
		t.Errorf("unsigned entry %s (%v), want %s", doc, err, want)
	}
	// Nix 2.35 reads structured and old string signatures alike.
	for _, name := range []string{"unkeyed-with-signature.json", "with-signature-unstructured.json"} {
		b := golden(t, "nix-2.35.2/"+name)
		var keyed struct{ Value json.RawMessage }
		if json.Unmarshal(b, &keyed) == nil && keyed.Value != nil {
			b = keyed.Value
		}
		_, sigs, err := cache.ParseBuildTraceDoc(b)
		if err != nil || len(sigs) != 1 || sigs[0].Name != "asdf" {
			t.Errorf("%s: signatures %v, %v; want one by asdf", name, sigs, err)
		}
	}
}

// TestRealisationGolden: the realisations/<id>.doi of Nix 2.4–2.34, from
// Nix 2.34's test data and the bytes Nix 2.8 wrote here.
func TestRealisationGolden(t *testing.T) {
	id := "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo"
	out := nixstore.StoreDir + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv"
	for _, tc := range []struct {
		file string
		r    nixstore.Realisation
	}{
		{"simple.json", nixstore.Realisation{ID: id, OutPath: out}},
		{"with-signature.json", nixstore.Realisation{ID: id, OutPath: out,
			Signatures: []string{"asdf:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}}},
		{"with-dependent-realisations.json", nixstore.Realisation{ID: id, OutPath: out,
			DependentRealisations: map[string]string{id: out}}},
	} {
		doc, err := cache.RealisationDoc(tc.r, nil)
		if want := compact(t, golden(t, "nix-2.34.8/"+tc.file)); err != nil || string(doc) != want {
			t.Errorf("%s:\n%s (%v)\nwant\n%s", tc.file, doc, err, want)
		}
	}
	if got := cache.RealisationKey(nixstore.Realisation{ID: id}); got != "realisations/"+id+".doi" {
		t.Errorf("key %q", got)
	}
	// What Nix 2.8 wrote: the same bytes from the same realisation, and
	// its signature verifies over our fingerprint.
	written := golden(t, "nix-2.8.0/ca-top.out.doi")
	var doc struct {
		ID         string   `json:"id"`
		OutPath    string   `json:"outPath"`
		Signatures []string `json:"signatures"`
	}
	if err := json.Unmarshal(written, &doc); err != nil {
		t.Fatal(err)
	}
	r := nixstore.Realisation{ID: doc.ID, OutPath: "/tmp/nixexp/store/" + doc.OutPath, Signatures: doc.Signatures}
	again, err := cache.RealisationDoc(r, nil)
	if err != nil || !bytes.Equal(again, written) {
		t.Errorf("Nix 2.8 wrote\n%s\nnixpush writes\n%s (%v)", written, again, err)
	}
	fp, err := cache.RealisationFingerprint(r)
	if want := string(golden(t, "nix-2.8.0/ca-top-fingerprint.txt")); err != nil || fp != want {
		t.Errorf("fingerprint %s (%v), want %s", fp, err, want)
	}
	pub, err := signature.ParsePublicKey(strings.TrimSpace(string(golden(t, "nix-2.8.0/signing-key.pub"))))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signature.ParseSignature(doc.Signatures[0])
	if err != nil || !pub.Verify(fp, sig) {
		t.Errorf("Nix 2.8's signature does not verify over the fingerprint (%v)", err)
	}
}
