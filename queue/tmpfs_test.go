package queue

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// As root (as the tests run) permissions cannot make a file unwritable, so
// these helpers use what can: a read-only mount (a full file system is
// internal/fulldisk).

// bindReadOnly makes a read-only view of dir (a bind mount remounted ro)
// and returns it; writes through dir still work, as a daemon's would
// while a user without write access reads the view.
func bindReadOnly(t *testing.T, dir string) string {
	t.Helper()
	view := filepath.Join(t.TempDir(), "ro-view")
	if err := os.Mkdir(view, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(dir, view, "", syscall.MS_BIND, ""); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("bind mount: %v (needs root)", err)
		}
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	t.Cleanup(func() { unmount(t, view) })
	flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
	if err := syscall.Mount("", view, "", flags, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", view, err)
	}
	if err := os.WriteFile(filepath.Join(view, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("%s is not read-only: writing gave %v", view, err)
	}
	return view
}

func unmount(t *testing.T, dir string) {
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Errorf("unmount %s: %v", dir, err)
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
}

// remountReadOnly makes the tmpfs at dir read-only; no file in it may be
// open for writing.
func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}
