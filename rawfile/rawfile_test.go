package rawfile

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadWrite(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	d, err := unix.Open(name, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f := File{FD: d, Name: name}
	if n, err := f.Write([]byte("hello, world")); n != 12 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	p := make([]byte, 5)
	if n, err := f.ReadAt(p, 7); n != 5 || err != nil || string(p) != "world" {
		t.Errorf("ReadAt(7) = %d %q, %v", n, p[:n], err)
	}
	if n, err := f.ReadAt(p, 10); n != 2 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt past the end = %d, %v, want 2, io.EOF", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if b, err := io.ReadAll(g); err != nil || string(b) != "hello, world" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
}

func TestErrorsNameTheFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Open(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) = %v, want a not-exist error naming the file", err)
	}
	dir := File{FD: -1, Name: "closed"}
	if _, err := dir.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Read of a bad descriptor = %v, want an error naming the file", err)
	}
}
