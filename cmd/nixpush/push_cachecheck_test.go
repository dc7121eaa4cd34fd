package main

// Checks of a cache directory the way Nix reads it, written from the
// format notes (docs/binary-cache-format.md) rather than from the code
// under test.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"nixpush/internal/nixtest"
)

// narInfo is what the checks need from a narinfo file.
type narInfo struct {
	file        string // name in the cache
	storePath   string
	url         string
	compression string
	fileHash    string
	fileSize    int64
	narHash     string
	narSize     int64
	references  []string // basenames
	sigs        []string
}

func parseNarInfo(file string, b []byte) (narInfo, error) {
	ni := narInfo{file: file, compression: "bzip2"}
	seen := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if !ok {
			if line == "References:\n" { // no references, no trailing blank
				seen["References"] = true
				continue
			}
			return ni, fmt.Errorf("line %q is not Key: value", line)
		}
		seen[k] = true
		var err error
		switch k {
		case "StorePath":
			ni.storePath = v
		case "URL":
			ni.url = v
		case "Compression":
			ni.compression = v
		case "FileHash":
			ni.fileHash = v
		case "FileSize":
			ni.fileSize, err = strconv.ParseInt(v, 10, 64)
		case "NarHash":
			ni.narHash = v
		case "NarSize":
			ni.narSize, err = strconv.ParseInt(v, 10, 64)
		case "References":
			ni.references = strings.Fields(v)
		case "Sig":
			ni.sigs = append(ni.sigs, v)
		}
		if err != nil {
			return ni, fmt.Errorf("%s: %w", k, err)
		}
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		return ni, errors.New("last line does not end in a newline")
	}
	for _, k := range []string{"StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References"} {
		if !seen[k] {
			return ni, fmt.Errorf("no %s", k)
		}
	}
	return ni, nil
}

// checkCache checks what makes a cache usable at any instant, even right
// after the pusher was killed: every narinfo names a NAR file that is
// complete (size and sha256 as the narinfo says), and every reference of a
// path has its narinfo too (references go first). It returns the narinfos
// by store path.
func checkCache(t *testing.T, cacheDir string) map[string]narInfo {
	t.Helper()
	info, err := os.ReadFile(filepath.Join(cacheDir, "nix-cache-info"))
	if err != nil || !strings.Contains(string(info), "StoreDir: /nix/store\n") {
		t.Errorf("nix-cache-info: %q, %v", info, err)
	}
	files, err := filepath.Glob(filepath.Join(cacheDir, "*.narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string]narInfo{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ni, err := parseNarInfo(filepath.Base(f), b)
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, b)
			continue
		}
		if want := hashPart(ni.storePath) + ".narinfo"; filepath.Base(f) != want {
			t.Errorf("%s holds the narinfo of %s, which belongs in %s", f, ni.storePath, want)
		}
		if ni.narSize <= 0 || !strings.HasPrefix(ni.narHash, "sha256:") || len(ni.narHash) != len("sha256:")+52 {
			t.Errorf("%s: NarHash %q, NarSize %d", f, ni.narHash, ni.narSize)
		}
		if ext := map[string]string{"zstd": ".nar.zst", "xz": ".nar.xz", "none": ".nar"}[ni.compression]; ext == "" || !strings.HasSuffix(ni.url, ext) {
			t.Errorf("%s: URL %s does not fit Compression %s", f, ni.url, ni.compression)
		}
		nar, err := os.ReadFile(filepath.Join(cacheDir, filepath.FromSlash(ni.url)))
		if err != nil {
			t.Errorf("%s: URL %s: %v", f, ni.url, err)
			continue
		}
		sum := sha256.Sum256(nar)
		if int64(len(nar)) != ni.fileSize || "sha256:"+nix32(sum[:]) != ni.fileHash {
			t.Errorf("%s: %s is %d bytes with sha256:%s; narinfo says %d bytes, %s",
				f, ni.url, len(nar), nix32(sum[:]), ni.fileSize, ni.fileHash)
		}
		infos[ni.storePath] = ni
	}
	for p, ni := range infos {
		for _, ref := range ni.references {
			if "/nix/store/"+ref == p {
				continue
			}
			if _, err := os.Stat(filepath.Join(cacheDir, hashPart(ref)+".narinfo")); err != nil {
				t.Errorf("narinfo of %s is in the cache but its reference %s is not: %v", p, ref, err)
			}
		}
	}
	return infos
}

// hashPart is the 32-character hash of a store path or basename.
func hashPart(p string) string {
	h, _, _ := strings.Cut(filepath.Base(p), "-")
	return h
}

// nix32 is Nix's base32 (printHash32), written here from the format notes
// rather than taken from the code under test.
func nix32(b []byte) string {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out = append(out, alphabet[c&0x1f])
	}
	return string(out)
}

func TestNix32MatchesNix(t *testing.T) {
	sum := sha256.Sum256([]byte("nixpush"))
	out, _, err := nixtest.Command(t, "nix", "hash", "to-base32", fmt.Sprintf("sha256:%x", sum))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nix32(sum[:]), strings.TrimSpace(out); got != want {
		t.Errorf("nix32 = %s, nix says %s", got, want)
	}
}

// fileState identifies one version of a file: a rewrite, even with the
// same bytes, changes the inode (rename into place) or the mtime.
type fileState struct {
	size  int64
	mtime int64
	ino   uint64
}

// snapshot records every file under dir.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	for _, rel := range dirEntries(t, dir) {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[rel] = fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: st.Ino}
	}
	return m
}
