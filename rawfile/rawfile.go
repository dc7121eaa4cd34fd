// Package rawfile reads and writes a file by its descriptor, for the small
// files a push opens by the hundred thousand: an *os.File asks the kernel
// for the descriptor's flags when it is made (fcntl F_GETFL), one system
// call more for each file, and on a paravirtualised kernel like this
// machine's every system call costs microseconds.
package rawfile

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is an open descriptor with the name errors report. Unlike an
// *os.File it is not closed by the garbage collector: Close it.
type File struct {
	FD   int
	Name string
}

// Open opens name read-only.
func Open(name string) (File, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return File{FD: -1}, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return File{FD: fd, Name: name}, nil
}

// Read reads up to len(p) bytes; io.EOF at the end.
func (f File) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.FD, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &os.PathError{Op: "read", Path: f.Name, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(p) bytes from off, or says why not (io.EOF at the end).
func (f File) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(f.FD, p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, &os.PathError{Op: "read", Path: f.Name, Err: err}
		case n == 0:
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Write writes all of p.
func (f File) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(f.FD, p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "write", Path: f.Name, Err: err}
		}
		done += n
	}
	return done, nil
}

// Close closes the descriptor.
func (f File) Close() error {
	if err := unix.Close(f.FD); err != nil {
		return &os.PathError{Op: "close", Path: f.Name, Err: err}
	}
	return nil
}
