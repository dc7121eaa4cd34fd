package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// syntheticCache is a binary cache of n store paths written straight to
// disk, in the layout nixpush's uploader writes (narinfo at the root, NAR
// objects under nar/): building n derivations with Nix would take an
// hour on this machine, and verify reads only what the cache holds.
//
// Every object is what a push would have written: a real NAR of a small
// tree, compressed with the uploader's default compression, its hashes
// and sizes computed from those bytes, and a narinfo made by
// uploader.NewNarInfo and signed with a real key.
type syntheticCache struct {
	Paths    []string
	NARKeys  []string // NARKeys[i] is the object Paths[i]'s narinfo names
	NARBytes int64    // sum of the NARs' uncompressed sizes
	Stored   int64    // sum of the compressed NAR objects' sizes
	Refs     int      // references over all narinfos
}

// syntheticSeed fixes the trees and the reference graph, so every run of
// the suite verifies the same shape of cache.
const syntheticSeed = 11

// writeSyntheticCache writes n paths into dir (a bucket's directory),
// each referring to 1–3 earlier ones (a DAG in push order), signed by sec.
func writeSyntheticCache(dir string, n int, sec signature.SecretKey) (*syntheticCache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "nar"), 0o755); err != nil {
		return nil, fmt.Errorf("create nar dir: %w", err)
	}
	cacheInfo := "StoreDir: " + nixstore.StoreDir + "\nWantMassQuery: 1\nPriority: 40\n"
	if err := os.WriteFile(filepath.Join(dir, "nix-cache-info"), []byte(cacheInfo), 0o644); err != nil {
		return nil, fmt.Errorf("write nix-cache-info: %w", err)
	}
	rng := rand.New(rand.NewPCG(syntheticSeed, 0))
	c := &syntheticCache{Paths: make([]string, n), NARKeys: make([]string, n)}
	for i := range n {
		h := sha256.Sum256(fmt.Appendf(nil, "nixpush verify bench path %d", i))
		c.Paths[i] = fmt.Sprintf("%s/%s-synthetic-%d", nixstore.StoreDir, nixbase32.EncodeToString(h[:20]), i)
		info := &nixstore.PathInfo{Path: c.Paths[i]}
		if i > 0 {
			// 1–3 distinct references among the 200 paths before it:
			// most dependencies are recent, as in a real build graph.
			for range 1 + rng.IntN(3) {
				ref := c.Paths[max(0, i-200)+rng.IntN(min(i, 200))]
				if !slices.Contains(info.References, ref) {
					info.References = append(info.References, ref)
				}
			}
		}
		c.Refs += len(info.References)
		if err := c.writePath(dir, i, info, rng, sec); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// writePath writes path i's NAR object, then its narinfo.
func (c *syntheticCache) writePath(dir string, i int, info *nixstore.PathInfo, rng *rand.Rand, sec signature.SecretKey) error {
	narBytes, err := syntheticNAR(i, rng)
	if err != nil {
		return fmt.Errorf("make NAR of %s: %w", info.Path, err)
	}
	narHash := sha256.Sum256(narBytes)
	info.NarHash, info.NarSize = narHash[:], uint64(len(narBytes))
	var z bytes.Buffer
	zw, err := uploader.DefaultCompression.NewWriter(&z, info.NarSize)
	if err != nil {
		return fmt.Errorf("compress NAR: %w", err)
	}
	if _, err := zw.Write(narBytes); err != nil {
		return fmt.Errorf("compress NAR: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress NAR: %w", err)
	}
	up := uploader.Uploaded{Key: uploader.NARKey(info, uploader.DefaultCompression),
		Compression: uploader.DefaultCompression, FileHash: sha256.Sum256(z.Bytes()), FileSize: uint64(z.Len())}
	if err := os.WriteFile(filepath.Join(dir, up.Key), z.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write NAR object: %w", err)
	}
	ni, err := uploader.NewNarInfo(info, up, []signature.SecretKey{sec})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, cache.NarInfoKey(info.Path)), []byte(ni.String()), 0o644); err != nil {
		return fmt.Errorf("write narinfo: %w", err)
	}
	c.NARKeys[i] = up.Key
	c.NARBytes += int64(info.NarSize)
	c.Stored += int64(up.FileSize)
	return nil
}

// syntheticNAR is the NAR of a small package-like tree: an executable
// script, a text file of 100 B–4 KB (words, so it compresses as text
// does) and a symlink.
func syntheticNAR(i int, rng *rand.Rand) ([]byte, error) {
	var text strings.Builder
	words := []string{"nix", "store", "path", "closure", "cache", "narinfo", "build", "derivation", "output", "hash"}
	for size := 100 + rng.IntN(3900); text.Len() < size; {
		fmt.Fprintf(&text, "%s %d ", words[rng.IntN(len(words))], rng.IntN(1000))
	}
	script := fmt.Sprintf("#!/bin/sh\nexec echo synthetic package %d \"$@\"\n", i)
	var b bytes.Buffer
	w, err := nar.NewWriter(&b)
	if err != nil {
		return nil, err
	}
	entries := []struct {
		hdr  nar.Header
		body string
	}{
		{nar.Header{Path: "/", Type: nar.TypeDirectory}, ""},
		{nar.Header{Path: "/bin", Type: nar.TypeDirectory}, ""},
		{nar.Header{Path: "/bin/synthetic", Type: nar.TypeRegular, Executable: true, Size: int64(len(script))}, script},
		{nar.Header{Path: "/bin/synthetic-alias", Type: nar.TypeSymlink, LinkTarget: "synthetic"}, ""},
		{nar.Header{Path: "/share", Type: nar.TypeDirectory}, ""},
		{nar.Header{Path: "/share/README", Type: nar.TypeRegular, Size: int64(text.Len())}, text.String()},
	}
	for _, e := range entries {
		if err := w.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
