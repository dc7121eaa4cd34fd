// Package fulldisk makes small filesystems that tests can fill to ENOSPC
// and free again: the real kernel error, not a mock. Mounting needs root;
// without it the test is skipped.
package fulldisk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory and returns it;
// it is unmounted when the test ends.
func Mount(t testing.TB, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	mount(t, dir, size, 0o700)
	return dir
}

// MountAt mounts a tmpfs of size bytes, mode 0755, on dir (made if
// missing), for a test that must put the full disk where a program looks.
// It is unmounted when the test ends: cleanups run last-in first-out, so
// after those of whatever the test starts later.
func MountAt(t testing.TB, dir string, size int) {
	t.Helper()
	mount(t, dir, size, 0o755)
}

func mount(t testing.TB, dir string, size int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("size=%d,mode=%04o", size, mode)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mount tmpfs: %v (needs root)", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// Fill writes a file into dir until the filesystem is full and returns its
// name: removing it frees the space. It fails the test unless even one
// more byte then fails with ENOSPC.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	// Smaller writes take the last blocks.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%s not full after filling it: writing a byte gave %v", dir, err)
	}
	_ = os.Remove(probe)
	return f.Name()
}
