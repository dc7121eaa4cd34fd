package uploader

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// Compression is how NARs are compressed in the cache, named as in a
// narinfo's Compression field, with Nix's compression-level and
// parallel-compression settings.
type Compression struct {
	Method string // "zstd", "xz", "br" or "none"
	// Level is the method's level as Nix means it, when HasLevel: for
	// zstd, zstd's level (0 is zstd's default, 3; below 0, its fast
	// levels); for xz, liblzma's preset 0–9; for br, brotli's quality
	// 0–11. Without it: zstd 1 (nixpush's default, see
	// DefaultCompression), xz 6 and br 11 (Nix's).
	Level    int
	HasLevel bool
	// Parallel compresses a large NAR on every core (Nix's
	// parallel-compression): the default for zstd, as in Nix 2.35; for
	// xz only when asked, as in Nix.
	Parallel bool
}

// DefaultCompression is zstd at level 1 (klauspost's SpeedFastest). On the
// Go toolchain's NAR it is 8 % larger than Nix's zstd level 3 but takes a
// third less CPU, which is what decides how fast a build machine's paths
// reach the cache (docs/benchmarks.md); --compression-level 3 matches
// Nix's size.
var DefaultCompression = Compression{Method: "zstd", Parallel: true}

// defaultZstdLevel is the level used when none is given.
const defaultZstdLevel = 1

// Level ranges as Nix accepts them: zstd's (ZSTD_minCLevel() to 22, -1
// excepted, which Nix takes for "default"), liblzma's presets, brotli's
// qualities.
const (
	minZstdLevel  = -(1 << 17)
	maxZstdLevel  = 22
	maxXZLevel    = 9
	maxBrotliQual = 11
)

// ParseCompression validates a method, level and parallel-compression
// as given on the command line or in a cache URL ("" means the default).
// A level or parallel-compression that would mean nothing for the method
// is an error, not ignored.
func ParseCompression(method, level, parallel string) (Compression, error) {
	c := Compression{Method: method}
	if method == "" {
		c.Method = DefaultCompression.Method
	}
	if level != "" {
		l, err := strconv.Atoi(level)
		if err != nil {
			return c, fmt.Errorf("compression level %q is not a number", level)
		}
		// -1 is Nix's "use the method's default".
		if l != -1 {
			c.Level, c.HasLevel = l, true
		}
	}
	switch c.Method {
	case "zstd":
		c.Parallel = true
		if c.HasLevel && (c.Level < minZstdLevel || c.Level > maxZstdLevel) {
			return c, fmt.Errorf("zstd compression level %d is out of range %d to %d", c.Level, minZstdLevel, maxZstdLevel)
		}
	case "xz":
		if c.HasLevel && (c.Level < 0 || c.Level > maxXZLevel) {
			return c, fmt.Errorf("xz compression level %d is out of range 0-%d", c.Level, maxXZLevel)
		}
	case "br":
		if c.HasLevel && (c.Level < 0 || c.Level > maxBrotliQual) {
			return c, fmt.Errorf("br (brotli) compression level %d is out of range 0-%d", c.Level, maxBrotliQual)
		}
	case "none":
		if c.HasLevel {
			return c, errors.New("compression-level means nothing with compression=none")
		}
	default:
		return c, fmt.Errorf("unknown compression %q (want zstd, xz, br or none)", c.Method)
	}
	switch parallel {
	case "":
	case "1", "true":
		if c.Method == "br" || c.Method == "none" {
			return c, fmt.Errorf("parallel-compression is not supported with compression=%s (nothing to spread over cores; Nix ignores it)", c.Method)
		}
		c.Parallel = true
	case "0", "false":
		c.Parallel = false
	default:
		return c, fmt.Errorf("parallel-compression %q is not a boolean (want true or false)", parallel)
	}
	return c, nil
}

// Ext is the file extension Nix gives NARs compressed this way.
func (c Compression) Ext() string {
	switch c.Method {
	case "zstd":
		return ".zst"
	case "xz":
		return ".xz"
	case "br":
		return ".br"
	}
	return ""
}

// brotliWindow is Nix's: BROTLI_DEFAULT_WINDOW, as its encoder sets no
// parameter.
const brotliWindow = 22

// zstdWindow caps the zstd window at 1 MiB: the parallel block encoder
// holds a few windows per job, and this keeps a large NAR's peak memory
// well under 100 MiB at a cost of about 1 % in size.
const zstdWindow = 1 << 20

// smallNAR is the size below which a NAR is compressed on one goroutine:
// splitting it into parallel jobs would cost more than it saves.
const smallNAR = 4 << 20

// zstdPools keeps encoders for reuse: a new encoder allocates megabytes of
// tables, which dominates the cost of compressing a small NAR.
var zstdPools sync.Map // zstdKey → *sync.Pool

type zstdKey struct {
	level    zstd.EncoderLevel
	parallel bool
}

// zstdLevel is the encoder level of c (zstd only).
func (c Compression) zstdLevel() zstd.EncoderLevel {
	switch {
	case c.HasLevel && c.Level == 0:
		return zstd.EncoderLevelFromZstd(3) // zstd's own meaning of 0
	case c.HasLevel && c.Level < 0:
		return zstd.SpeedFastest // zstd's fast levels: the fastest there is here
	case c.HasLevel:
		return zstd.EncoderLevelFromZstd(c.Level)
	}
	return zstd.EncoderLevelFromZstd(defaultZstdLevel)
}

// parallelThreads is how many goroutines (threads) compress a NAR of
// narSize: one for a small NAR or without Parallel, else every core but
// at least two. Two on a one-core machine, because a single one would
// take the other encoder (zstd's streaming one, liblzma's single-threaded
// one), whose bytes differ: see NewWriter.
func (c Compression) parallelThreads(narSize uint64) int {
	if !c.Parallel || narSize < smallNAR {
		return 1
	}
	return max(2, runtime.GOMAXPROCS(0))
}

// NewWriter returns a compressing writer onto w for a NAR of narSize
// bytes. Closing it flushes the compressed stream but does not close w.
//
// Its output is a function of the NAR and c alone, on any machine: NAR
// objects are named after that (ContentNARKey), and a name shared by
// machines must hold the same bytes. So nothing the machine decides may
// change it: a large NAR is compressed in jobs (zstd) or blocks (xz)
// whose size follows the level, not the core count, whatever the number
// of threads (see parallelThreads); brotli has one thread; and the
// output does not depend on how writes cut the stream. EncoderID must
// change whenever this output may.
func (c Compression) NewWriter(w io.Writer, narSize uint64) (io.WriteCloser, error) {
	switch c.Method {
	case "zstd":
		level := c.zstdLevel()
		threads := c.parallelThreads(narSize)
		key := zstdKey{level: level, parallel: threads > 1}
		pool, _ := zstdPools.LoadOrStore(key, &sync.Pool{})
		enc, _ := pool.(*sync.Pool).Get().(*zstd.Encoder)
		if enc == nil {
			var err error
			enc, err = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(level),
				zstd.WithEncoderConcurrency(threads),
				zstd.WithConcurrentBlocks(key.parallel),
				zstd.WithWindowSize(zstdWindow),
			)
			if err != nil {
				return nil, err
			}
		}
		enc.Reset(w)
		return &pooledEncoder{Encoder: enc, pool: pool.(*sync.Pool)}, nil
	case "xz":
		return newXZWriter(w, c.xzLevel(), c.parallelThreads(narSize))
	case "br":
		// The brotli encoder's output follows how writes cut its input:
		// it is fed fixed pieces.
		bw := brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: c.brotliQuality(), LGWin: brotliWindow})
		return &evenWriter{buf: bufio.NewWriterSize(bw, brotliPiece), close: bw.Close}, nil
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c.Method)
}

func (c Compression) xzLevel() int {
	if c.HasLevel {
		return c.Level
	}
	return xzDefaultLevel
}

func (c Compression) brotliQuality() int {
	if c.HasLevel {
		return c.Level
	}
	return maxBrotliQual
}

// EncoderID is 8 characters that differ between any two Compressions
// whose NewWriter may give different bytes for the same NAR: a digest of
// the method, the encoder's settings (parallel or not: jobs and blocks
// make other bytes than one stream) and its library's version (a new
// version may compress differently, so its objects get names of their
// own).
func (c Compression) EncoderID() string {
	if id, ok := encoderIDs.Load(c); ok {
		return id.(string)
	}
	id := c.encoderID()
	encoderIDs.Store(c, id)
	return id
}

// encoderIDs keeps each Compression's EncoderID: it names every NAR, and
// its parts (the build info, liblzma's version) never change in a process.
var encoderIDs sync.Map

func (c Compression) encoderID() string {
	var id string
	switch c.Method {
	case "zstd":
		id = fmt.Sprintf("zstd level=%d window=%d parallel=%v from=%d %s",
			c.zstdLevel(), zstdWindow, c.Parallel, smallNAR, moduleVersion("github.com/klauspost/compress"))
	case "xz":
		id = fmt.Sprintf("xz preset=%d check=crc64 parallel=%v from=%d liblzma %s", c.xzLevel(), c.Parallel, smallNAR, xzVersion())
	case "br":
		id = fmt.Sprintf("br quality=%d window=%d %s", c.brotliQuality(), brotliWindow, moduleVersion("github.com/andybalholm/brotli"))
	default:
		id = c.Method
	}
	sum := sha256.Sum256([]byte("nixpush NAR encoder 1: " + id))
	return nixbase32.EncodeToString(sum[:5])
}

// moduleVersion is the version of a module built into this binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					d = d.Replace
				}
				return path + "@" + d.Version + d.Sum
			}
		}
	}
	return path + "@unknown"
}

// brotliPiece is the size of the pieces a brotli encoder is fed.
const brotliPiece = 64 << 10

// evenWriter feeds an encoder pieces of exactly its buffer's size (the
// last excepted), whatever the writes it gets: a bare bufio.Writer would
// pass a large write on whole when its buffer is empty.
type evenWriter struct {
	buf   *bufio.Writer
	close func() error
}

func (e *evenWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), e.buf.Available())
		if k == 0 {
			if err := e.buf.Flush(); err != nil {
				return n, err
			}
			continue
		}
		m, err := e.buf.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (e *evenWriter) Close() error {
	if err := e.buf.Flush(); err != nil {
		return err
	}
	return e.close()
}

// pooledEncoder returns its encoder to the pool once the stream is done.
type pooledEncoder struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (p *pooledEncoder) Close() error {
	err := p.Encoder.Close()
	if err == nil {
		p.Encoder.Reset(nil)
		p.pool.Put(p.Encoder)
	}
	return err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
