package cache_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"nixpush/cache"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

const goodNarInfo = `StorePath: /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60
URL: nar/1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d.nar.xz
Compression: xz
FileHash: sha256:1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d
FileSize: 114980
NarHash: sha256:0lxjvvpr59c2mdram7ympy5ay741f180kv3349hvfc3f8nrmbqf6
NarSize: 464152
References: 7gx4kiv5m0i7d7qkixq2cwzbr10lvxwc-glibc-2.27 00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60
Deriver: 4x2yqhsqv5mql3gdj1qgq8qkcwfbyj7k-net-tools-1.60.drv
Sig: cache.nixos.org-1:sn5s/RrqEI+YG6/PjwdbPjcAC7rcta7sJU4mFOawGvJBLsWkyLtBrT2EuFt/LJjWkTZ+ZWOI9NTtjo/woMdvAg==
`

const key = "00bgd045z0d4icpbc2yyz4gx48ak44la.narinfo"

func TestParseNarInfo(t *testing.T) {
	ni, err := cache.ParseNarInfo(key, []byte(goodNarInfo))
	if err != nil {
		t.Fatal(err)
	}
	if ni.FileSize != 114980 || ni.NarSize != 464152 || len(ni.References) != 2 || len(ni.Signatures) != 1 ||
		ni.Deriver != "4x2yqhsqv5mql3gdj1qgq8qkcwfbyj7k-net-tools-1.60.drv" || ni.Compression != "xz" {
		t.Errorf("parsed %+v", ni)
	}
	for _, tc := range []struct {
		name, text, key, want string
		storePath             bool // the error still names the store path
	}{
		{name: "unknown field ignored", text: goodNarInfo + "Ultimate: 1\n"},
		{name: "no Compression means bzip2", text: strings.Replace(goodNarInfo, "Compression: xz\n", "", 1)},
		{name: "not a narinfo", text: "<html>404</html>\n", want: "not \"Key: value\""},
		{name: "bad NarSize", text: strings.Replace(goodNarInfo, "NarSize: 464152", "NarSize: lots", 1), want: "NarSize", storePath: true},
		{name: "zero NarSize", text: strings.Replace(goodNarInfo, "NarSize: 464152", "NarSize: 0", 1), want: "NarSize is 0", storePath: true},
		{name: "bad hash", text: strings.Replace(goodNarInfo, "NarHash: sha256:0l", "NarHash: sha256:!!", 1), want: "NarHash", storePath: true},
		{name: "bad signature", text: goodNarInfo + "Sig: k:notbase64\n", want: "Sig", storePath: true},
		{name: "no URL", text: strings.Replace(goodNarInfo, "URL: nar/", "X: nar/", 1), want: "no URL", storePath: true},
		{name: "bad reference", text: strings.Replace(goodNarInfo, "References: 7gx4", "References: ../7gx4", 1), want: "Reference", storePath: true},
		{name: "under another key", text: goodNarInfo, key: "11111111111111111111111111111111.narinfo", want: "does not belong", storePath: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := key
			if tc.key != "" {
				k = tc.key
			}
			_, err := cache.ParseNarInfo(k, []byte(tc.text))
			if tc.want == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			var perr *cache.ParseError
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a ParseError mentioning %q", err, tc.want)
			}
			if got := perr.StorePath != ""; got != tc.storePath {
				t.Errorf("ParseError.StorePath = %q", perr.StorePath)
			}
		})
	}
}

// TestFingerprintGolden: the fingerprint of a real cache.nixos.org
// narinfo is byte for byte the one go-nix's test data gives, and its
// signature verifies against it; references in another order give the
// same fingerprint.
func TestFingerprintGolden(t *testing.T) {
	text, err := os.ReadFile("testdata/curl-7.82.0-bin.narinfo")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/curl-7.82.0-bin.fingerprint.txt")
	if err != nil {
		t.Fatal(err)
	}
	ni, err := cache.ParseNarInfo("syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo", text)
	if err != nil {
		t.Fatal(err)
	}
	if got := cache.Fingerprint(ni); got != strings.TrimSpace(string(want)) {
		t.Errorf("fingerprint\n got %s\nwant %s", got, want)
	}
	slices.Reverse(ni.References)
	if got := cache.Fingerprint(ni); got != strings.TrimSpace(string(want)) {
		t.Errorf("fingerprint of reversed references differs: %s", got)
	}
	pub, err := signature.ParsePublicKey("cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=")
	if err != nil {
		t.Fatal(err)
	}
	if signer, _ := cache.TrustedSigner(ni, []signature.PublicKey{pub}); signer != "cache.nixos.org-1" {
		t.Errorf("cache.nixos.org-1's signature does not verify (signer %q)", signer)
	}
}

// BenchmarkFingerprint100k: 100,000 references take milliseconds (go-nix's
// took 50 s).
func BenchmarkFingerprint100k(b *testing.B) {
	ni := &narinfo.NarInfo{StorePath: "/nix/store/00000000000000000000000000000000-x", NarSize: 1}
	ni.NarHash = nixhash.MustNewHashWithEncoding(nixhash.SHA256, make([]byte, 32), nixhash.NixBase32, true)
	for i := range 100_000 {
		ni.References = append(ni.References, fmt.Sprintf("%032d-ref", i))
	}
	for b.Loop() {
		_ = cache.Fingerprint(ni)
	}
}
