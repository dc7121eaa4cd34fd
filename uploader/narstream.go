package uploader

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nix-community/go-nix/pkg/nixbase32"

	"nixpush/nixstore"
	"nixpush/retry"
)

// bufSize is the size of the buffers between the pipeline's stages. Small
// writes through a pipe hand the CPU back and forth between goroutines and
// serialise them; 1 MiB chunks let dumping and compressing overlap.
const bufSize = 1 << 20

// ErrHashMismatch means the NAR read from disk is not the one the Nix DB
// records: the store is corrupted or was modified. Retrying cannot help.
var ErrHashMismatch = fmt.Errorf("NAR hash mismatch")

// wholeNAR is the largest NAR produced whole before its upload starts. A
// small path's NAR streamed through a pipe cost a goroutine and its
// stack, and the hand-offs between producer and consumer, about a tenth
// of the CPU of a push of many small paths. A backend holds a body this
// size in memory anyway (backendHead), and narWeight counts it.
const wholeNAR = backendHead

// narStream produces the compressed NAR of one store path as a reader, so
// any cache backend can stream it to its destination. A large NAR is
// dumped and compressed in a goroutine; its hash and size are checked
// against the DB at the end, and on a mismatch the reader fails instead
// of returning EOF, so Put leaves no object behind. Memory stays at a few
// buffers whatever the NAR's size. A small NAR is produced whole first,
// and a mismatch fails the reader's first read.
type narStream struct {
	narSize  uint64 // from the DB: bounds the compressed size (see SizeHint)
	src      io.Reader
	stop     func(error) // fails src: the consumer gave up or was cancelled
	fileHash hash.Hash
	fileSize uint64
	listing  *bytes.Buffer // the .ls listing, when asked for; complete at EOF
	moved    *atomic.Int64 // set to now at each read, when not nil
	sent     *atomic.Int64 // counts the bytes read, when not nil
}

// openNARStream starts producing the NAR; with listing, the .ls listing
// is built from the same walk of the files. Each of read counts the
// uncompressed bytes as they are dumped.
func openNARStream(store *nixstore.Store, info *nixstore.PathInfo, c Compression, listing bool, read []*atomic.Int64) *narStream {
	s := &narStream{narSize: info.NarSize, fileHash: sha256.New()}
	if listing {
		s.listing = &bytes.Buffer{}
	}
	if info.NarSize <= wholeNAR {
		whole := bytes.NewBuffer(make([]byte, 0, info.NarSize))
		s.src, s.stop = whole, func(error) {} // nothing left to stop
		if err := produceNAR(whole, store, info, c, s.listing, read); err != nil {
			s.src = failed{err}
		}
		return s
	}
	pr, pw := io.Pipe()
	s.src, s.stop = pr, func(err error) { pr.CloseWithError(err) }
	go func() { pw.CloseWithError(produceNAR(pw, store, info, c, s.listing, read)) }()
	return s
}

func (s *narStream) Read(p []byte) (int, error) {
	n, err := s.src.Read(p)
	if s.moved != nil && n > 0 {
		s.moved.Store(time.Now().UnixNano())
	}
	if s.sent != nil {
		s.sent.Add(int64(n))
	}
	s.fileHash.Write(p[:n])
	s.fileSize += uint64(n)
	return n, err
}

// failed is a NAR that could not be produced.
type failed struct{ err error }

func (f failed) Read([]byte) (int, error) { return 0, f.err }

// SizeHint is the uncompressed NAR size: a backend that must choose how to
// split an upload (S3 parts) sizes it from this. Compression rarely adds
// more than a fraction of a percent to incompressible data.
func (s *narStream) SizeHint() int64 { return int64(s.narSize) }

// Close stops the producer if the consumer gave up early.
func (s *narStream) Close() error {
	s.stop(io.ErrClosedPipe)
	return nil
}

// result is valid once Read has returned io.EOF.
func (s *narStream) result(key string, c Compression) Uploaded {
	u := Uploaded{Key: key, Compression: c, FileSize: s.fileSize}
	copy(u.FileHash[:], s.fileHash.Sum(nil))
	if s.listing != nil {
		u.Listing = s.listing.Bytes()
	}
	return u
}

// bufFor sizes a stage buffer for a NAR: a small NAR needs no megabyte
// buffers, and allocating them per path would dominate its cost.
func bufFor(narSize uint64) int {
	return int(min(max(narSize+512, 4096), bufSize))
}

// stagePools keep the stage buffers of small NARs between paths, one
// pool per size (4, 8, 16, 32 KiB): two fresh ones a path were a seventh
// of what a push of many small paths allocated. A buffer is no larger
// than twice what its NAR needs, so the many in flight stay small.
var stagePools [4]sync.Pool

// stageWriter is a stage buffer for a NAR in front of w, and what gives
// it back once the stage is done with it.
func stageWriter(w io.Writer, narSize uint64) (*bufio.Writer, func()) {
	size := bufFor(narSize)
	class := bits.Len(uint(size-1) >> 12) // 4 KiB → 0, 8 KiB → 1, ...
	if class >= len(stagePools) {
		return bufio.NewWriterSize(w, size), func() {}
	}
	pool := &stagePools[class]
	b, _ := pool.Get().(*bufio.Writer)
	if b == nil {
		b = bufio.NewWriterSize(nil, 4096<<class)
	}
	b.Reset(w)
	return b, func() { b.Reset(nil); pool.Put(b) }
}

// produceNAR runs dump → hash → compress → w.
func produceNAR(w io.Writer, store *nixstore.Store, info *nixstore.PathInfo, c Compression, listing *bytes.Buffer, read []*atomic.Int64) error {
	out, done := stageWriter(w, info.NarSize)
	defer done()
	zw, err := c.NewWriter(out, info.NarSize)
	if err != nil {
		return retry.Permanent(err)
	}
	narHash := sha256.New()
	counter := &countingWriter{also: read}
	in, inDone := stageWriter(io.MultiWriter(narHash, counter, zw), info.NarSize)
	defer inDone()
	if listing != nil {
		err = store.DumpNARWithListing(in, listing, info.Path)
	} else {
		err = store.DumpNAR(in, info.Path)
	}
	if err != nil {
		return err
	}
	if err := in.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress NAR of %s: %w", info.Path, err)
	}
	if got := narHash.Sum(nil); !bytes.Equal(got, info.NarHash) || counter.n != info.NarSize {
		return retry.Permanent(fmt.Errorf("%w for %s: the Nix DB says sha256:%s (%d bytes), the files on disk give sha256:%s (%d bytes); run nix-store --verify --check-contents",
			ErrHashMismatch, info.Path, nixbase32.EncodeToString(info.NarHash), info.NarSize,
			nixbase32.EncodeToString(got), counter.n))
	}
	return out.Flush()
}

type countingWriter struct {
	n    uint64
	also []*atomic.Int64 // progress counters, moved as n is
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	for _, a := range c.also {
		a.Add(int64(len(p)))
	}
	return len(p), nil
}
