package queue

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// As root (as the tests run) permissions cannot make a file unwritable, so
// these helpers use what can: a read-only mount and a full file system.

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted at cleanup. The test is skipped where mounting is
// not permitted (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := "size=" + itoa(size) + ",mode=0700"
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mount tmpfs: %v (needs root)", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}

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

// fillFS writes a file into dir until its file system is full and returns
// the file's name; removing it frees the space again.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	junk := filepath.Join(dir, "junk")
	f, err := os.Create(junk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	// The last write is cut short at the last free page, then fails.
	for err == nil {
		_, err = f.Write(chunk)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
	}
	if _, err := f.Write([]byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%s not full after filling it: writing a byte gave %v", dir, err)
	}
	return junk
}

// remountReadOnly makes the tmpfs at dir read-only; no file in it may be
// open for writing.
func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
}
