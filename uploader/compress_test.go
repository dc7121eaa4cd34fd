package uploader_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"nixpush/nixstore"
	"nixpush/uploader"
)

func TestParseCompression(t *testing.T) {
	type C = uploader.Compression
	for _, tc := range []struct {
		method, level, parallel string
		want                    C
		ext                     string
		wantErr                 bool
	}{
		{"", "", "", C{Method: "zstd", Parallel: true}, ".zst", false},
		{"zstd", "", "", C{Method: "zstd", Parallel: true}, ".zst", false},
		{"zstd", "19", "", C{Method: "zstd", Level: 19, HasLevel: true, Parallel: true}, ".zst", false},
		{"zstd", "0", "false", C{Method: "zstd", Level: 0, HasLevel: true}, ".zst", false},
		{"zstd", "-5", "", C{Method: "zstd", Level: -5, HasLevel: true, Parallel: true}, ".zst", false},
		{"zstd", "-1", "", C{Method: "zstd", Parallel: true}, ".zst", false}, // Nix's "default"
		{"xz", "6", "", C{Method: "xz", Level: 6, HasLevel: true}, ".xz", false},
		{"xz", "0", "", C{Method: "xz", Level: 0, HasLevel: true}, ".xz", false},
		{"xz", "", "true", C{Method: "xz", Parallel: true}, ".xz", false},
		{"br", "", "", C{Method: "br"}, ".br", false},
		{"br", "5", "0", C{Method: "br", Level: 5, HasLevel: true}, ".br", false},
		{"none", "", "", C{Method: "none"}, "", false},
		{"zstd", "23", "", C{}, "", true},
		{"xz", "10", "", C{}, "", true},
		{"xz", "-2", "", C{}, "", true},
		{"br", "12", "", C{}, "", true},
		{"br", "", "1", C{}, "", true},
		{"none", "3", "", C{}, "", true},
		{"none", "", "true", C{}, "", true},
		{"zstd", "", "yes", C{}, "", true},
		{"zstd", "fast", "", C{}, "", true},
		{"bzip2", "", "", C{}, "", true},
		{"gzip", "", "", C{}, "", true},
	} {
		got, err := uploader.ParseCompression(tc.method, tc.level, tc.parallel)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCompression(%q, %q, %q) error = %v, want error %v", tc.method, tc.level, tc.parallel, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && (got != tc.want || got.Ext() != tc.ext) {
			t.Errorf("ParseCompression(%q, %q, %q) = %+v (ext %q), want %+v (ext %q)", tc.method, tc.level, tc.parallel, got, got.Ext(), tc.want, tc.ext)
		}
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	// Compressible, but not trivially: random words from a small set.
	words := []string{"nix", "store", "path", "narinfo", "closure", "reference", "/nix/store/", "\n", "\x00\x01"}
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	for b.Len() < 64<<10 {
		b.WriteString(words[r.IntN(len(words))])
	}
	data := b.Bytes()
	decompress := map[string]func(io.Reader) (io.Reader, error){
		"zstd": func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
		"xz":   func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
		"br":   func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		"none": func(r io.Reader) (io.Reader, error) { return r, nil },
	}
	// Each twice, so a pooled encoder is reused; with a small and a large
	// NAR size hint (single-goroutine and parallel zstd encoders).
	for _, c := range []uploader.Compression{{Method: "zstd", Parallel: true}, {Method: "zstd", Level: 9, HasLevel: true},
		{Method: "xz"}, {Method: "xz", Level: 1, HasLevel: true}, {Method: "xz", Parallel: true}, {Method: "br", Level: 4, HasLevel: true}, {Method: "none"}} {
		for _, sizeHint := range []uint64{uint64(len(data)), 64 << 20} {
			for round := range 2 {
				in := data[round:] // a different stream each round
				var buf bytes.Buffer
				w, err := c.NewWriter(&buf, sizeHint)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(in); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if c.Method != "none" && buf.Len() >= len(in)/2 {
					t.Errorf("%+v: %d bytes compressed to %d", c, len(in), buf.Len())
				}
				dr, err := decompress[c.Method](&buf)
				if err != nil {
					t.Fatalf("%+v: %v", c, err)
				}
				got, err := io.ReadAll(dr)
				if err != nil || !bytes.Equal(got, in) {
					t.Errorf("%+v, size hint %d, round %d: round trip gave %d bytes, %v", c, sizeHint, round, len(got), err)
				}
			}
		}
	}
}

func TestFilter(t *testing.T) {
	const h = "/nix/store/p8ga2na9a53nhhjpb8rkzrqh9dznmcqm-"
	f := uploader.Filter{
		Exclude:      []*regexp.Regexp{regexp.MustCompile(`^source$`), regexp.MustCompile(`-doc$`)},
		UpstreamKeys: []string{"cache.nixos.org-1"},
	}
	withDrv := f
	withDrv.IncludeDrv = true
	for _, tc := range []struct {
		name string
		f    uploader.Filter
		info nixstore.PathInfo
		want uploader.Reason
	}{
		{"plain", f, nixstore.PathInfo{Path: h + "hello-2.12"}, uploader.Keep},
		{"drv", f, nixstore.PathInfo{Path: h + "hello-2.12.drv"}, uploader.Drv},
		{"drv included", withDrv, nixstore.PathInfo{Path: h + "hello-2.12.drv"}, uploader.Keep},
		{"excluded", f, nixstore.PathInfo{Path: h + "source"}, uploader.Excluded},
		{"pattern sees the name, not the hash", f, nixstore.PathInfo{Path: "/nix/store/source00000000000000000000000000-x"}, uploader.Keep},
		{"excluded suffix", f, nixstore.PathInfo{Path: h + "hello-2.12-doc"}, uploader.Excluded},
		{"upstream", f, nixstore.PathInfo{Path: h + "glibc", Sigs: []string{"cache.nixos.org-1:abc"}}, uploader.Upstream},
		{"other signature", f, nixstore.PathInfo{Path: h + "glibc", Sigs: []string{"cache.nixos.org-10:abc", "mine:x"}}, uploader.Keep},
		{"drv beats upstream", f, nixstore.PathInfo{Path: h + "x.drv", Sigs: []string{"cache.nixos.org-1:abc"}}, uploader.Drv},
	} {
		if got := tc.f.Check(&tc.info); got != tc.want {
			t.Errorf("%s: Check(%s) = %v, want %v", tc.name, tc.info.Path, got, tc.want)
		}
	}
}
