package nixstore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

func TestOpen(t *testing.T) {
	s := nixtest.NewStore(t)
	st := open(t, s)
	if st.Root() != s.Root || st.DBPath() != s.DB() || st.RealStoreDir() != filepath.Join(s.Root, "nix/store") {
		t.Errorf("Root, DBPath, RealStoreDir = %s, %s, %s", st.Root(), st.DBPath(), st.RealStoreDir())
	}
	if p := "/nix/store/00000000000000000000000000000000-x"; st.RealPath(p) != s.Real(p) {
		t.Errorf("RealPath(%s) = %s, want %s", p, st.RealPath(p), s.Real(p))
	}

	// No DB: an error, and no DB file created by the attempt.
	empty := t.TempDir()
	if _, err := nixstore.Open(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(dir without a DB) = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "nix")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created files under %s: %v", empty, err)
	}

	// A SQLite file that is not a Nix DB.
	notNix := t.TempDir()
	db := filepath.Join(notNix, "nix/var/nix/db/db.sqlite")
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := nixstore.Open(notNix); err == nil || !strings.Contains(err.Error(), "not a Nix database") {
		t.Errorf("Open(empty SQLite file) = %v, want \"not a Nix database\"", err)
	}
}
