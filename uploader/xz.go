package uploader

/*
#cgo LDFLAGS: -llzma
#include <lzma.h>
#include <stdlib.h>
#include <string.h>

// xzStream is an encoder and the buffers it reads and writes, all in C
// memory: liblzma keeps pointers to both between calls, which Go memory
// may not be.
typedef struct {
	lzma_stream strm;
	uint8_t *in;
	uint8_t *out;
} xzStream;

static xzStream *xzNew(uint32_t preset, uint32_t threads, size_t bufSize, lzma_ret *ret) {
	xzStream *s = calloc(1, sizeof(xzStream));
	if (s == NULL) {
		*ret = LZMA_MEM_ERROR;
		return NULL;
	}
	lzma_stream init = LZMA_STREAM_INIT;
	s->strm = init;
	s->in = malloc(bufSize);
	s->out = malloc(bufSize);
	if (s->in == NULL || s->out == NULL) {
		*ret = LZMA_MEM_ERROR;
	} else if (threads > 1) {
		// As libarchive's xz filter with threads (Nix's
		// parallel-compression): the preset's LZMA2, CRC64.
		lzma_mt mt = {0};
		mt.threads = threads;
		mt.timeout = 300;
		mt.preset = preset;
		mt.check = LZMA_CHECK_CRC64;
		*ret = lzma_stream_encoder_mt(&s->strm, &mt);
	} else {
		// lzma_stream_encoder with the preset's LZMA2 filter and CRC64,
		// as libarchive's xz filter sets it up for Nix.
		*ret = lzma_easy_encoder(&s->strm, preset, LZMA_CHECK_CRC64);
	}
	if (*ret != LZMA_OK) {
		free(s->in);
		free(s->out);
		free(s);
		return NULL;
	}
	return s;
}

// xzCode feeds n bytes of s->in (or, with finish, none) and returns what
// liblzma says; *produced is how much of s->out it filled.
static lzma_ret xzCode(xzStream *s, size_t n, int finish, size_t bufSize, size_t *consumed, size_t *produced) {
	s->strm.next_in = s->in;
	s->strm.avail_in = n;
	s->strm.next_out = s->out;
	s->strm.avail_out = bufSize;
	lzma_ret ret = lzma_code(&s->strm, finish ? LZMA_FINISH : LZMA_RUN);
	*consumed = n - s->strm.avail_in;
	*produced = bufSize - s->strm.avail_out;
	return ret;
}

static const char *xzVersionString(void) { return lzma_version_string(); }

static void xzFree(xzStream *s) {
	lzma_end(&s->strm);
	free(s->in);
	free(s->out);
	free(s);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"
)

// Nix compresses xz with libarchive's xz filter, which sets liblzma's
// preset to compression-level (default 6; 0–9, no "extreme" variant)
// and checks with CRC64, on one thread unless parallel-compression. So
// does nixpush, with the same library: for a given level a NAR
// compresses to the same bytes as with nix copy.

// xzVersion is the version of the liblzma linked in: another may
// compress differently (EncoderID).
func xzVersion() string { return C.GoString(C.xzVersionString()) }

// xzBufSize is the size of each C buffer of an xz encoder.
const xzBufSize = 64 << 10

// xzDefaultLevel is liblzma's LZMA_PRESET_DEFAULT, Nix's level when none
// is given.
const xzDefaultLevel = 6

// xzWriter compresses to w with liblzma.
type xzWriter struct {
	w      io.Writer
	s      *C.xzStream
	closed bool
	free   func()
}

// newXZWriter starts an xz stream at level (0–9) on threads threads
// (1: liblzma's single-threaded encoder, as Nix without
// parallel-compression).
func newXZWriter(w io.Writer, level, threads int) (*xzWriter, error) {
	var ret C.lzma_ret
	s := C.xzNew(C.uint32_t(level), C.uint32_t(threads), xzBufSize, &ret)
	if s == nil {
		return nil, fmt.Errorf("start xz compression at level %d: liblzma error %d", level, int(ret))
	}
	x := &xzWriter{w: w, s: s}
	// A stream abandoned half-way (its NAR failed) is not Closed: its C
	// memory goes when the writer does.
	var once sync.Once
	x.free = func() { once.Do(func() { C.xzFree(s) }) }
	runtime.SetFinalizer(x, func(x *xzWriter) { x.free() })
	return x, nil
}

func (x *xzWriter) Write(p []byte) (int, error) {
	if x.closed {
		return 0, errors.New("write to a closed xz stream")
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), xzBufSize)
		C.memcpy(unsafe.Pointer(x.s.in), unsafe.Pointer(&p[0]), C.size_t(n))
		for off := 0; off < n; {
			consumed, err := x.code(n-off, false, off)
			if err != nil {
				return written + off, err
			}
			off += consumed
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// code runs liblzma over n bytes of the input buffer starting at off
// (moved to its start first) and writes what it produced.
func (x *xzWriter) code(n int, finish bool, off int) (int, error) {
	if off > 0 && n > 0 {
		C.memmove(unsafe.Pointer(x.s.in), unsafe.Pointer(uintptr(unsafe.Pointer(x.s.in))+uintptr(off)), C.size_t(n))
	}
	var consumed, produced C.size_t
	fin := C.int(0)
	if finish {
		fin = 1
	}
	ret := C.xzCode(x.s, C.size_t(n), fin, xzBufSize, &consumed, &produced)
	if produced > 0 {
		if _, err := x.w.Write(C.GoBytes(unsafe.Pointer(x.s.out), C.int(produced))); err != nil {
			return int(consumed), err
		}
	}
	switch ret {
	case C.LZMA_OK:
		return int(consumed), nil
	case C.LZMA_STREAM_END:
		return int(consumed), io.EOF
	}
	return int(consumed), fmt.Errorf("xz compression: liblzma error %d", int(ret))
}

// Close finishes the stream, writing its end to w, and frees the encoder.
func (x *xzWriter) Close() error {
	if x.closed {
		return nil
	}
	x.closed = true
	defer x.free()
	for {
		_, err := x.code(0, true, 0)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
