package uploader

import (
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/nix-community/go-nix/pkg/nixbase32"
	"github.com/ulikunitz/xz"
)

// Compression is how NARs are compressed in the cache, named as in a
// narinfo's Compression field.
type Compression struct {
	Method string // "zstd", "xz" or "none"
	Level  int    // method-specific; 0 means the method's default
}

// DefaultCompression is zstd at level 1 (klauspost's SpeedFastest). On the
// Go toolchain's NAR it is 8 % larger than Nix's zstd level 3 but takes a
// third less CPU, which is what decides how fast a build machine's paths
// reach the cache (docs/benchmarks.md); --compression-level 3 matches
// Nix's size.
var DefaultCompression = Compression{Method: "zstd"}

// defaultZstdLevel is the level used when none is given.
const defaultZstdLevel = 1

// ParseCompression validates a method and level as given on the command
// line or in a cache URL (level "" means the default).
func ParseCompression(method, level string) (Compression, error) {
	c := Compression{Method: method}
	if method == "" {
		c.Method = DefaultCompression.Method
	}
	if level != "" {
		l, err := strconv.Atoi(level)
		if err != nil {
			return c, fmt.Errorf("compression level %q is not a number", level)
		}
		c.Level = l
	}
	switch c.Method {
	case "zstd":
		if c.Level < 0 || c.Level > 22 {
			return c, fmt.Errorf("zstd compression level %d is out of range 1-22", c.Level)
		}
	case "xz":
		if c.Level < 0 || c.Level > 9 {
			return c, fmt.Errorf("xz compression level %d is out of range 0-9", c.Level)
		}
	case "none":
	default:
		return c, fmt.Errorf("unknown compression %q (want zstd, xz or none)", c.Method)
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
	}
	return ""
}

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
	if c.Level != 0 {
		return zstd.EncoderLevelFromZstd(c.Level)
	}
	return zstd.EncoderLevelFromZstd(defaultZstdLevel)
}

// NewWriter returns a compressing writer onto w for a NAR of narSize
// bytes. Closing it flushes the compressed stream but does not close w.
//
// Its output is a function of the NAR and c alone, on any machine: NAR
// objects are named after that (ContentNARKey), and a name shared by
// machines must hold the same bytes. So nothing the machine decides may
// change it: zstd compresses a large NAR in independent jobs whose size
// follows the window, not the core count, on at least two goroutines
// even on one core (a single goroutine would take another path with other
// output); the output is the same however writes cut the stream.
// EncoderID must change whenever this output may.
func (c Compression) NewWriter(w io.Writer, narSize uint64) (io.WriteCloser, error) {
	switch c.Method {
	case "zstd":
		level := c.zstdLevel()
		key := zstdKey{level: level, parallel: narSize >= smallNAR}
		pool, _ := zstdPools.LoadOrStore(key, &sync.Pool{})
		enc, _ := pool.(*sync.Pool).Get().(*zstd.Encoder)
		if enc == nil {
			var err error
			enc, err = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(level),
				zstd.WithEncoderConcurrency(map[bool]int{true: max(2, runtime.GOMAXPROCS(0)), false: 1}[key.parallel]),
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
		return c.xzConfig().NewWriter(w)
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c.Method)
}

func (c Compression) xzConfig() xz.WriterConfig {
	cfg := xz.WriterConfig{}
	if c.Level != 0 {
		// xz presets map to LZMA2 dictionary sizes; ulikunitz/xz takes
		// the dictionary size directly.
		cfg.DictCap = 1 << (18 + c.Level)
	}
	return cfg
}

// EncoderID is 8 characters that differ between any two Compressions
// whose NewWriter may give different bytes for the same NAR: a digest of
// the method, the encoder's settings and its library's version (a new
// version may compress differently, so its objects get names of their
// own).
func (c Compression) EncoderID() string {
	var id string
	switch c.Method {
	case "zstd":
		id = fmt.Sprintf("zstd level=%d window=%d jobs-from=%d %s", c.zstdLevel(), zstdWindow, smallNAR, moduleVersion("github.com/klauspost/compress"))
	case "xz":
		id = fmt.Sprintf("xz dict=%d %s", c.xzConfig().DictCap, moduleVersion("github.com/ulikunitz/xz"))
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
