package uploader_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// Expected values computed with the real Nix 2.8 CLI, e.g.
// nix hash to-base32 --type sha256 $(printf abc | sha256sum | cut -c1-64)
// (nix-hash --type sha256 --to-base32 agrees).
const (
	sha256Empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	nix32Empty  = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
	sha256ABC   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	nix32ABC    = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNix32(t *testing.T) {
	for _, tc := range []struct {
		name, hex, want string
	}{
		{"sha256 of empty", sha256Empty, nix32Empty},
		{"sha256 of abc", sha256ABC, nix32ABC},
		{"sha256 of the quick brown fox",
			"d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
			"14p5r4vvzl025mvdng3dwi8md3ag5q4b1g4sr9lr906p0yrzpa6p"},
		// 20 bytes: the length of a store path hash (32 characters).
		{"sha1 of abc", "a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"},
		{"md5 of abc", "900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			digest := unhex(t, tc.hex)
			if got := nixbase32.EncodeToString(digest); got != tc.want {
				t.Errorf("nix32(%s) = %s, want %s", tc.hex, got, tc.want)
			}
			if n := len(digest); len(tc.want) != (n*8-1)/5+1 {
				t.Errorf("test vector length %d, want (n*8-1)/5+1 = %d", len(tc.want), (n*8-1)/5+1)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	info := &nixstore.PathInfo{
		Path:    "/nix/store/p8ga2na9a53nhhjpb8rkzrqh9dznmcqm-tree",
		NarHash: unhex(t, sha256ABC),
	}
	if got, want := cache.NarInfoKey(info.Path), "p8ga2na9a53nhhjpb8rkzrqh9dznmcqm.narinfo"; got != want {
		t.Errorf("NarInfoKey = %s, want %s", got, want)
	}
	// Every upload gets a name of its own: nar/<NAR hash>-<13 nix32>.nar<ext>.
	for _, tc := range []struct{ method, ext string }{{"zstd", ".nar.zst"}, {"xz", ".nar.xz"}, {"none", ".nar"}} {
		c := uploader.Compression{Method: tc.method}
		a, b := uploader.NARKey(info, c), uploader.NARKey(info, c)
		re := regexp.MustCompile(`^nar/` + nix32ABC + `-[0-9a-df-np-sv-z]{13}` + regexp.QuoteMeta(tc.ext) + `$`)
		if !re.MatchString(a) || !re.MatchString(b) || a == b {
			t.Errorf("NARKey(%s) = %s then %s, want two distinct names matching %s", tc.method, a, b, re)
		}
	}
}

// fixedKey is a signing key from a fixed seed, so signatures (ed25519 is
// deterministic) can be checked against crypto/ed25519 directly.
func fixedKey(t *testing.T, name string, seedByte byte) (signature.SecretKey, ed25519.PrivateKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(slices.Repeat([]byte{seedByte}, ed25519.SeedSize))
	k, err := signature.LoadSecretKey(name + ":" + base64.StdEncoding.EncodeToString(priv))
	if err != nil {
		t.Fatal(err)
	}
	return k, priv
}

func sigLine(name string, priv ed25519.PrivateKey, fingerprint string) string {
	return name + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(fingerprint)))
}

const (
	self = "/nix/store/7a9mf618d4mniawd82wp0igxbgs1s1cj-x-ref-top"
	refA = "/nix/store/0gkbn1kgyclly2w3b7b6b9vm6xghn5a4-a"
	refZ = "/nix/store/zrb2dgrqlywpcdvya23wm0s109a1msa9-x-ref-dep"
)

func TestNewNarInfo(t *testing.T) {
	key, priv := fixedKey(t, "test-1", 7)
	fileHash := sha256.Sum256(nil)
	nar := uploader.Uploaded{
		Key:         "nar/" + nix32ABC + ".nar.zst",
		Compression: uploader.Compression{Method: "zstd"},
		FileHash:    fileHash,
		FileSize:    99,
	}

	t.Run("references", func(t *testing.T) {
		refs := []string{refZ, self, refA} // unsorted, as a caller might give them
		info := &nixstore.PathInfo{
			Path:       self,
			NarHash:    unhex(t, sha256ABC),
			NarSize:    1234,
			References: slices.Clone(refs),
			Deriver:    "/nix/store/awa5ia18h8bbpmmmia5a6wv1aq62rba6-x-ref-top.drv",
		}
		ni, err := uploader.NewNarInfo(info, nar, []signature.SecretKey{key})
		if err != nil {
			t.Fatal(err)
		}
		fp := "1;" + self + ";sha256:" + nix32ABC + ";1234;" + refA + "," + self + "," + refZ
		if got := ni.Fingerprint(); got != fp {
			t.Errorf("fingerprint\n got  %s\n want %s", got, fp)
		}
		if len(ni.Signatures) != 1 || !key.ToPublicKey().Verify(fp, ni.Signatures[0]) {
			t.Fatalf("signatures %v do not verify over %q", ni.Signatures, fp)
		}
		want := "StorePath: " + self + "\n" +
			"URL: nar/" + nix32ABC + ".nar.zst\n" +
			"Compression: zstd\n" +
			"FileHash: sha256:" + nix32Empty + "\n" +
			"FileSize: 99\n" +
			"NarHash: sha256:" + nix32ABC + "\n" +
			"NarSize: 1234\n" +
			"References: 0gkbn1kgyclly2w3b7b6b9vm6xghn5a4-a 7a9mf618d4mniawd82wp0igxbgs1s1cj-x-ref-top zrb2dgrqlywpcdvya23wm0s109a1msa9-x-ref-dep\n" +
			"Deriver: awa5ia18h8bbpmmmia5a6wv1aq62rba6-x-ref-top.drv\n" +
			"Sig: " + sigLine("test-1", priv, fp) + "\n"
		if got := ni.String(); got != want {
			t.Errorf("narinfo\n%s\nwant\n%s", got, want)
		}
		if !slices.Equal(info.References, refs) {
			t.Errorf("NewNarInfo changed the PathInfo's references to %q", info.References)
		}
	})

	t.Run("no references, content-addressed", func(t *testing.T) {
		ca := "fixed:r:sha256:" + nix32Empty
		info := &nixstore.PathInfo{
			Path:    "/nix/store/p8ga2na9a53nhhjpb8rkzrqh9dznmcqm-tree",
			NarHash: unhex(t, sha256Empty),
			NarSize: 456,
			CA:      ca,
		}
		ni, err := uploader.NewNarInfo(info, nar, []signature.SecretKey{key})
		if err != nil {
			t.Fatal(err)
		}
		fp := "1;/nix/store/p8ga2na9a53nhhjpb8rkzrqh9dznmcqm-tree;sha256:" + nix32Empty + ";456;"
		if got := ni.Fingerprint(); got != fp {
			t.Errorf("fingerprint\n got  %s\n want %s", got, fp)
		}
		want := "StorePath: /nix/store/p8ga2na9a53nhhjpb8rkzrqh9dznmcqm-tree\n" +
			"URL: nar/" + nix32ABC + ".nar.zst\n" +
			"Compression: zstd\n" +
			"FileHash: sha256:" + nix32Empty + "\n" +
			"FileSize: 99\n" +
			"NarHash: sha256:" + nix32Empty + "\n" +
			"NarSize: 456\n" +
			"References: \n" +
			"Sig: " + sigLine("test-1", priv, fp) + "\n" +
			"CA: " + ca + "\n"
		if got := ni.String(); got != want {
			t.Errorf("narinfo\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("existing signatures", func(t *testing.T) {
		other, otherPriv := fixedKey(t, "other-1", 9)
		second, secondPriv := fixedKey(t, "test-2", 11)
		info := &nixstore.PathInfo{
			Path:    self,
			NarHash: unhex(t, sha256ABC),
			NarSize: 1234,
		}
		fp := "1;" + self + ";sha256:" + nix32ABC + ";1234;"
		otherSig := sigLine("other-1", otherPriv, fp)
		info.Sigs = []string{
			otherSig,
			sigLine("test-1", priv, "an old fingerprint"), // stale: ours is made afresh
			"not-a-signature",
		}
		ni, err := uploader.NewNarInfo(info, nar, []signature.SecretKey{key, second})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ni.Signatures {
			got = append(got, s.String())
		}
		want := []string{otherSig, sigLine("test-1", priv, fp), sigLine("test-2", secondPriv, fp)}
		if !slices.Equal(got, want) {
			t.Errorf("signatures\n got  %q\n want %q", got, want)
		}
		for _, k := range []signature.SecretKey{other, key, second} {
			if !signature.VerifyFirst(fp, ni.Signatures, []signature.PublicKey{k.ToPublicKey()}) {
				t.Errorf("no valid signature by %s", k.ToPublicKey().Name)
			}
		}
		if n := strings.Count(ni.String(), "Sig: test-1:"); n != 1 {
			t.Errorf("narinfo has %d Sig lines by test-1, want 1:\n%s", n, ni)
		}
	})
}

// TestNewNarInfoMatchesNix has Nix write narinfos for the same paths with
// the same key, uncompressed: Nix then names the NAR by its hash, as we do,
// so the narinfos must be byte-identical.
func TestNewNarInfoMatchesNix(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("nm"))
	dep, top := out[0], out[1]
	added := addFile(t, s, "added-tree", "content-addressed\n")
	key, secFile, pub, _ := keygen(t, "test-key-1")
	dbSec, _, _ := nixtest.Keygen(t, "aaa-db-key") // sorts before test-key-1, as Nix orders Sig lines
	// dep: a DB signature by another key, which both must keep.
	// added: a DB signature by our own key, which must not be doubled.
	for _, sign := range []struct{ key, path string }{{dbSec, dep}, {secFile, added}} {
		if _, _, err := s.Run(t, "nix", "store", "sign", "-k", sign.key, sign.path); err != nil {
			t.Fatal(err)
		}
	}

	cacheDir := filepath.Join(t.TempDir(), "nix-cache")
	if _, _, err := s.Run(t, "nix", "copy", "--to", "file://"+cacheDir+"?compression=none&secret-key="+secFile, top, added); err != nil {
		t.Fatal(err)
	}

	st := openStore(t, s)
	for _, p := range []string{dep, top, added} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(cacheDir, cache.NarInfoKey(p)))
			if err != nil {
				t.Fatal(err)
			}
			nixText := string(b)
			info, err := st.QueryPathInfo(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			none := uploader.Compression{Method: "none"}
			ni, err := uploader.NewNarInfo(info, uploader.Uploaded{
				Key:         "nar/" + nixbase32.EncodeToString(info.NarHash) + ".nar", // where Nix put it
				Compression: none,
				FileHash:    [32]byte(info.NarHash),
				FileSize:    info.NarSize,
			}, []signature.SecretKey{key})
			if err != nil {
				t.Fatal(err)
			}
			if got := ni.String(); got != nixText {
				t.Errorf("our narinfo\n%s\nNix's\n%s", got, nixText)
			}
			var ours []signature.Signature
			for _, s := range ni.Signatures {
				if s.Name == "test-key-1" {
					ours = append(ours, s)
				}
			}
			if len(ours) != 1 || !pub.Verify(ni.Fingerprint(), ours[0]) {
				t.Errorf("signatures by test-key-1: %v, want one that verifies", ours)
			}
			if _, err := os.Stat(filepath.Join(cacheDir, ni.URL)); err != nil {
				t.Errorf("Nix wrote no NAR where our URL points: %v", err)
			}
		})
	}
}
