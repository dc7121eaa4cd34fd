package nixstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// dbRelPath is where a store root keeps its Nix DB (see DBPath).
const dbRelPath = "nix/var/nix/db/db.sqlite"

// DBExists reports whether the store at root has a Nix DB yet: a store
// root that a command is about to create (nix-build --store ROOT) has none.
func DBExists(root string) bool {
	if root == "" {
		root = "/"
	}
	_, err := os.Stat(filepath.Join(root, dbRelPath))
	return !errors.Is(err, fs.ErrNotExist)
}

// WaitOpen opens the store at root once Nix has created its DB and the
// DB answers, checking every poll; it gives up when ctx ends. Nix creates
// the file before its tables, so a DB that exists but cannot be queried
// yet is waited for too.
func WaitOpen(ctx context.Context, root string, poll time.Duration) (*Store, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if DBExists(root) {
			s, err := Open(root)
			if err == nil {
				if _, err = s.MaxID(ctx); err == nil {
					return s, nil
				}
				s.Close()
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
