package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// nixDBFiles are the files of a store's Nix DB that hold its rows: the
// database and its write-ahead log (the shared-memory index is rebuilt
// from the log when it is missing).
var nixDBFiles = []string{"db.sqlite", "db.sqlite-wal"}

// nixDBSnapshot is a copy of a store's Nix DB, so the store can be put
// back as it was after paths were registered: each of the scale suite's
// catch-ups then starts on a store of the same size, where registering
// 10,000 paths per catch-up would otherwise grow the store under the
// later ones. Taken and put back only while no process has the DB open.
// The paths' files stay in the store directory, no longer valid.
type nixDBSnapshot struct {
	dir, copy string
}

// snapshotNixDB copies root's Nix DB aside.
func snapshotNixDB(root string) (*nixDBSnapshot, error) {
	s := &nixDBSnapshot{dir: filepath.Join(root, "nix", "var", "nix", "db")}
	s.copy = filepath.Join(s.dir, "bench-snapshot")
	if err := os.MkdirAll(s.copy, 0o755); err != nil {
		return nil, err
	}
	for _, name := range nixDBFiles {
		if err := copyIfExists(filepath.Join(s.dir, name), filepath.Join(s.copy, name)); err != nil {
			return nil, fmt.Errorf("snapshot of the Nix DB: %w", err)
		}
	}
	return s, nil
}

// restore puts the DB back as it was at the snapshot.
func (s *nixDBSnapshot) restore() error {
	for _, name := range append(nixDBFiles, "db.sqlite-shm") {
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	for _, name := range nixDBFiles {
		if err := copyIfExists(filepath.Join(s.copy, name), filepath.Join(s.dir, name)); err != nil {
			return fmt.Errorf("restore of the Nix DB: %w", err)
		}
	}
	return nil
}

// copyIfExists copies the file src to dst, if src exists.
func copyIfExists(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
