package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// TestCheckCacheFindsEachKindOfDamage: the monitor is only worth its
// polls if it sees a missing NAR, a wrong size, a wrong hash and a
// dangling reference.
func TestCheckCacheFindsEachKindOfDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string)
		want   string // in the one problem reported; "" for none
	}{
		{"whole", func(string) {}, ""},
		{"NAR missing", func(dir string) { os.Remove(filepath.Join(dir, "nar", "a.nar")) }, "no such file"},
		{"NAR of another size", func(dir string) { write(t, filepath.Join(dir, "nar", "a.nar"), "longer bytes") }, "FileSize"},
		{"NAR of the same size, other bytes", func(dir string) { write(t, filepath.Join(dir, "nar", "a.nar"), "NAR bytes") }, "FileHash"},
		{"reference without narinfo", func(dir string) { os.Remove(filepath.Join(dir, "bbbb.narinfo")) }, "reference bbbb-dep has no narinfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			narinfo(t, dir, "aaaa-top", "a.nar", "nar bytes", "aaaa-top bbbb-dep")
			narinfo(t, dir, "bbbb-dep", "b.nar", "dep bytes", "")
			tt.damage(dir)
			_, problems := checkCache(dir, map[string][]byte{})
			got := strings.Join(problems, "; ")
			if tt.want == "" && got != "" || tt.want != "" && (len(problems) != 1 || !strings.Contains(got, tt.want)) {
				t.Errorf("problems = %q, want one with %q", got, tt.want)
			}
		})
	}
}

func narinfo(t *testing.T, dir, storeName, nar, content, refs string) {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	h := nixhash.MustNewHashWithEncoding(nixhash.SHA256, sum[:], nixhash.NixBase32, true)
	write(t, filepath.Join(dir, "nar", nar), content)
	hash, _, _ := strings.Cut(storeName, "-")
	write(t, filepath.Join(dir, hash+".narinfo"), fmt.Sprintf(
		"StorePath: /nix/store/%s\nURL: nar/%s\nCompression: none\nFileHash: %s\nFileSize: %d\nNarHash: %s\nNarSize: %d\nReferences: %s\n",
		storeName, nar, h, len(content), h, len(content), refs))
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
