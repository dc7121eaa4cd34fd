package uploader

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
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

// NewWriter returns a compressing writer onto w for a NAR of narSize
// bytes. Closing it flushes the compressed stream but does not close w.
func (c Compression) NewWriter(w io.Writer, narSize uint64) (io.WriteCloser, error) {
	switch c.Method {
	case "zstd":
		level := zstd.EncoderLevelFromZstd(defaultZstdLevel)
		switch {
		case c.HasLevel && c.Level == 0:
			level = zstd.EncoderLevelFromZstd(3) // zstd's own meaning of 0
		case c.HasLevel && c.Level < 0:
			level = zstd.SpeedFastest // zstd's fast levels: the fastest there is here
		case c.HasLevel:
			level = zstd.EncoderLevelFromZstd(c.Level)
		}
		key := zstdKey{level: level, parallel: c.Parallel && narSize >= smallNAR && runtime.GOMAXPROCS(0) > 1}
		pool, _ := zstdPools.LoadOrStore(key, &sync.Pool{})
		enc, _ := pool.(*sync.Pool).Get().(*zstd.Encoder)
		if enc == nil {
			var err error
			enc, err = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(level),
				zstd.WithEncoderConcurrency(map[bool]int{true: runtime.GOMAXPROCS(0), false: 1}[key.parallel]),
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
		level, threads := xzDefaultLevel, 1
		if c.HasLevel {
			level = c.Level
		}
		if c.Parallel && narSize >= smallNAR {
			threads = runtime.GOMAXPROCS(0)
		}
		return newXZWriter(w, level, threads)
	case "br":
		quality := maxBrotliQual
		if c.HasLevel {
			quality = c.Level
		}
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: quality, LGWin: brotliWindow}), nil
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c.Method)
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
