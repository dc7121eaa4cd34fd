package nixstore

import (
	"bufio"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrNoBuildLog is returned by OpenBuildLog when the store has no log for a
// derivation: it was substituted rather than built, built elsewhere, or its
// log was deleted. That is normal, not a failure.
var ErrNoBuildLog = errors.New("no build log in the local store")

// ErrCorruptBuildLog is the read error of a build log whose bzip2 stream is
// damaged. Reading it again cannot help.
var ErrCorruptBuildLog = errors.New("corrupt bzip2 build log")

// LogDir is the directory Nix keeps build logs in: <root>/nix/var/log/nix.
func (s *Store) LogDir() string { return filepath.Join(s.root, "nix/var/log/nix") }

// OpenBuildLog opens the build log of a derivation (a /nix/store/...drv
// path) as plain text: what `nix log` prints and what `nix store copy-log`
// uploads. It looks where Nix 2.8's LocalFSStore::getBuildLog looks, in
// order: drvs/<first 2 chars of the basename>/<rest>, then the older flat
// drvs/<basename>; each plain, then bzip2-compressed (".bz2", the default
// with compress-build-log). It returns ErrNoBuildLog when there is none.
//
// The log is decompressed as it is read, so a large log is never held in
// memory. Nix skips a .bz2 it cannot decompress; here only a file that is
// not bzip2 at all is skipped, and damage further in shows up as a read
// error wrapping ErrCorruptBuildLog.
func (s *Store) OpenBuildLog(drvPath string) (io.ReadCloser, error) {
	base := path.Base(drvPath)
	if !strings.HasSuffix(base, ".drv") || len(base) < 3 || path.Dir(drvPath) != StoreDir {
		return nil, fmt.Errorf("open build log: %q is not a derivation in %s", drvPath, StoreDir)
	}
	drvs := filepath.Join(s.LogDir(), "drvs")
	for _, p := range []string{filepath.Join(drvs, base[:2], base[2:]), filepath.Join(drvs, base)} {
		f, err := os.Open(p)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open build log: %w", err)
		}
		r, err := openBzip2Log(p + ".bz2")
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrCorruptBuildLog) {
			return nil, fmt.Errorf("open build log: %w", err)
		}
	}
	return nil, ErrNoBuildLog
}

// openBzip2Log opens a .bz2 log, refusing (ErrCorruptBuildLog) one that
// does not even start like a bzip2 stream.
func openBzip2Log(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(f)
	if magic, err := br.Peek(3); err != nil || string(magic) != "BZh" {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, ErrCorruptBuildLog)
	}
	return &bzip2Log{r: bzip2.NewReader(br), f: f}, nil
}

type bzip2Log struct {
	r io.Reader
	f *os.File
}

func (l *bzip2Log) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	var se bzip2.StructuralError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%s: %w: %v", l.f.Name(), ErrCorruptBuildLog, err)
	}
	return n, err
}

func (l *bzip2Log) Close() error { return l.f.Close() }
