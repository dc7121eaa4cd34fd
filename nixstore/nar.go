package nixstore

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"nixpush/rawfile"
)

// DumpNAR writes the NAR serialisation of a store path to w, byte for byte
// what `nix-store --dump` writes. It makes many small writes, so w should
// be buffered.
//
// It does not use go-nix's nar.Writer: that writer works out the nesting
// from the relative path between consecutive entries, and takes a name
// starting with ".." (a file called "..." or "..data") for a step up, so it
// fails on store paths that Nix dumps without complaint.
func (s *Store) DumpNAR(w io.Writer, storePath string) error {
	return s.dumpNAR(w, nil, storePath)
}

// DumpNARWithListing is DumpNAR that also writes to listing the JSON that
// Nix uploads as <hash>.ls with write-nar-listing=1, byte for byte. The
// listing comes from the same walk as the NAR (the encoder knows every
// file's offset in the NAR), so the files are read once. It is written to
// listing in one Write, only when the dump succeeded.
func (s *Store) DumpNARWithListing(w, listing io.Writer, storePath string) error {
	ls := &narListing{}
	if err := s.dumpNAR(w, ls, storePath); err != nil {
		return err
	}
	if _, err := listing.Write(ls.finish()); err != nil {
		return fmt.Errorf("write NAR listing of %s: %w", storePath, err)
	}
	return nil
}

func (s *Store) dumpNAR(w io.Writer, ls *narListing, storePath string) error {
	e := narEncoder{w: w, ls: ls}
	e.str("nix-archive-1")
	if err := e.node(s.RealPath(storePath)); err != nil {
		return fmt.Errorf("dump NAR of %s: %w", storePath, err)
	}
	if e.err != nil {
		return fmt.Errorf("dump NAR of %s: %w", storePath, e.err)
	}
	return nil
}

// narEncoder writes NAR tokens; the first write error sticks and turns
// every later write into a no-op. pos counts the bytes written, which is
// what the listing's narOffset needs.
type narEncoder struct {
	w   io.Writer
	ls  *narListing // nil: no listing wanted
	pos uint64
	err error
	buf [8]byte
}

// write is the only place bytes reach w, so pos stays exact.
func (e *narEncoder) write(p []byte) {
	if e.err == nil {
		var n int
		n, e.err = e.w.Write(p)
		e.pos += uint64(n)
	}
}

var narPadding [8]byte

// str writes a NAR string: 64-bit little-endian length, bytes, zero padding
// to a multiple of 8.
func (e *narEncoder) str(s string) {
	e.length(uint64(len(s)))
	if e.err == nil {
		var n int
		n, e.err = io.WriteString(e.w, s)
		e.pos += uint64(n)
	}
	e.pad(uint64(len(s)))
}

func (e *narEncoder) length(n uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], n)
	e.write(e.buf[:])
}

func (e *narEncoder) pad(n uint64) {
	if rem := n % 8; rem != 0 {
		e.write(narPadding[:8-rem])
	}
}

// node writes the file, symlink or directory at p, as Nix's dumpPath does:
// directory entries sorted bytewise by name, "executable" when the owner
// may execute the file.
func (e *narEncoder) node(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	e.str("(")
	e.str("type")
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		e.str("regular")
		executable := mode&0o100 != 0
		if executable {
			e.str("executable")
			e.str("")
		}
		e.str("contents")
		if err := e.contents(p, fi.Size(), executable); err != nil {
			return err
		}
	case mode&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		e.str("symlink")
		e.str("target")
		e.str(target)
		e.ls.symlink(target)
	case mode.IsDir():
		e.str("directory")
		entries, err := os.ReadDir(p) // sorted by name, bytewise
		if err != nil {
			return err
		}
		e.ls.openDir()
		for i, ent := range entries {
			e.ls.entry(i, ent.Name())
			e.str("entry")
			e.str("(")
			e.str("name")
			e.str(ent.Name())
			e.str("node")
			if err := e.node(filepath.Join(p, ent.Name())); err != nil {
				return err
			}
			e.str(")")
		}
		e.ls.closeDir()
	default:
		return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
	}
	e.str(")")
	return e.err
}

// contents writes a regular file's length-prefixed, padded bytes. The size
// is the one Lstat saw: a file that changes size meanwhile is an error, as
// in Nix.
func (e *narEncoder) contents(p string, size int64, executable bool) error {
	// A plain blocking open, read by descriptor: os.Open would also try to
	// register every file with the network poller, and any *os.File asks
	// for the descriptor's flags, wasted system calls that show on trees
	// of many small files.
	f, err := rawfile.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	e.length(uint64(size))
	if e.err != nil {
		return e.err
	}
	e.ls.regular(size, executable, e.pos)
	n, err := io.Copy(e.w, io.LimitReader(f, size))
	e.pos += uint64(n)
	if err != nil {
		e.err = err
		return err
	}
	if n != size {
		return fmt.Errorf("%s: file size changed while reading (%d bytes, expected %d)", p, n, size)
	}
	e.pad(uint64(size))
	return e.err
}
