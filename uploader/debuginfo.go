package uploader

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"

	"nixpush/cache"
	"nixpush/nixstore"
)

// Which files index-debug-info indexes, as Nix finds them.
var (
	buildIDDir  = regexp.MustCompile(`^[0-9a-f]{2}$`)
	buildIDFile = regexp.MustCompile(`^[0-9a-f]{38}\.debug$`)
)

// debugFiles lists the debug files of a store path as Nix finds them:
// regular files (not symlinks) lib/debug/.build-id/<2 hex>/<38 hex>.debug,
// as paths relative to the store path.
func debugFiles(store *nixstore.Store, storePath string) ([]string, error) {
	root := filepath.Join(store.RealPath(storePath), "lib", "debug", ".build-id")
	if st, err := os.Lstat(root); err != nil || !st.IsDir() {
		return nil, nil // the path has no debug files
	}
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("index debug info of %s: %w", storePath, err)
	}
	var out []string
	for _, d := range dirs {
		if !d.IsDir() || !buildIDDir.MatchString(d.Name()) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("index debug info of %s: %w", storePath, err)
		}
		for _, f := range files {
			if f.Type().IsRegular() && buildIDFile.MatchString(f.Name()) {
				out = append(out, path.Join("lib/debug/.build-id", d.Name(), f.Name()))
			}
		}
	}
	return out, nil
}

// putDebugInfo writes the debuginfo objects of a pushed path whose NAR is
// at narKey. As in Nix, an object already there is kept: another NAR may
// hold the same debug file.
func (u *Uploader) putDebugInfo(ctx context.Context, info *nixstore.PathInfo, narKey string) error {
	files, err := debugFiles(u.Store, info.Path)
	if err != nil {
		return err
	}
	for _, member := range files {
		key := cache.DebugInfoKey(member)
		if ok, err := u.Cache.Exists(ctx, key); err != nil || ok {
			if err != nil {
				return fmt.Errorf("index debug info: %w", err)
			}
			continue
		}
		doc, err := cache.DebugInfoDoc(narKey, member)
		if err != nil {
			return err
		}
		if err := u.Cache.Put(ctx, key, bytes.NewReader(doc), cache.TypeDebugInfo); err != nil {
			return fmt.Errorf("index debug info: %w", err)
		}
	}
	return nil
}
