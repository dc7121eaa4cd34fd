package filecache

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"nixpush/cache"
	"nixpush/rawfile"
)

// tempFile is an object being written, held by its descriptor (see
// package rawfile): an unnamed file (O_TMPFILE), or a named one where the
// filesystem has no O_TMPFILE.
type tempFile struct {
	rawfile.File
	named bool
}

func (t tempFile) chmod(mode uint32) error {
	if err := unix.Fchmod(t.FD, mode); err != nil {
		return &fs.PathError{Op: "chmod", Path: t.Name, Err: err}
	}
	return nil
}

// umask is the process's file mode mask: an unnamed file is created 0644
// minus the mask, so with the usual 022 it needs no chmod.
var umask = func() int {
	m := unix.Umask(0)
	unix.Umask(m)
	return m
}()

// createTemp opens an unnamed file in dir, or a named one where the
// filesystem has no O_TMPFILE. It creates dir when missing.
// Unnamed files matter here: creating and renaming a named file costs
// twice the directory updates, and on a slow disk those dominate the cost
// of a small path.
func createTemp(dir string) (tempFile, error) {
	for range 2 {
		d, err := openUnnamed(dir)
		if err == nil {
			return tempFile{File: rawfile.File{FD: d, Name: dir}}, nil
		}
		if errors.Is(err, unix.ENOENT) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return tempFile{}, err
			}
			continue
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
			return tempFile{}, &fs.PathError{Op: "create", Path: dir, Err: err}
		}
		break
	}
	// The rare fallback keeps os.CreateTemp's naming and a descriptor of
	// its own: two system calls more, only where there is no O_TMPFILE.
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return tempFile{}, err
	}
	defer f.Close()
	d, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		os.Remove(f.Name())
		return tempFile{}, &fs.PathError{Op: "dup", Path: f.Name(), Err: err}
	}
	return tempFile{File: rawfile.File{FD: d, Name: f.Name()}, named: true}, nil
}

// openUnnamed opens an unnamed file in dir; tests stand in a filesystem
// without O_TMPFILE.
var openUnnamed = func(dir string) (int, error) {
	return unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
}

// tempName is a fresh name for a file being written in dir; List skips it.
func tempName(dir string) string {
	return filepath.Join(dir, tmpPrefix+strconv.FormatUint(rand.Uint64(), 36))
}

// publish gives the finished file its name dst; with create, only if no
// file has it (cache.ErrExists).
func (t tempFile) publish(dst string, create bool) error {
	if t.named && create {
		err := os.Link(t.Name, dst)
		if errors.Is(err, fs.ErrExist) {
			return cache.ErrExists
		}
		return err
	}
	if t.named {
		return os.Rename(t.Name, dst)
	}
	err := flink(t.FD, dst)
	if create && errors.Is(err, unix.EEXIST) {
		return cache.ErrExists
	}
	if !errors.Is(err, unix.EEXIST) {
		if err != nil {
			return &fs.PathError{Op: "link", Path: dst, Err: err}
		}
		return nil
	}
	// Replacing an object: link under a temp name, then rename over it.
	tmp := tempName(filepath.Dir(dst))
	if err := flink(t.FD, tmp); err != nil {
		return &fs.PathError{Op: "link", Path: tmp, Err: err}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// emptyPathDenied is set once linkat(AT_EMPTY_PATH) was refused while a
// link through /proc worked.
var emptyPathDenied atomic.Bool

// flink links the unnamed file d under dst. linkat(2) with AT_EMPTY_PATH
// names the file by its descriptor; kernels before 6.10 allow that only
// with CAP_DAC_READ_SEARCH and answer ENOENT. The link then goes through
// /proc/self/fd, which needs no privilege but a walk through procfs, a
// few microseconds a file here.
func flink(d int, dst string) error {
	if emptyPathDenied.Load() {
		return procLink(d, dst)
	}
	err := unix.Linkat(d, "", unix.AT_FDCWD, dst, unix.AT_EMPTY_PATH)
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EPERM) {
		return err
	}
	// ENOENT is also a missing directory: only the link through /proc
	// working tells that AT_EMPTY_PATH was what failed.
	if err := procLink(d, dst); err != nil {
		return err
	}
	emptyPathDenied.Store(true)
	return nil
}

func procLink(d int, dst string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(d), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
}
