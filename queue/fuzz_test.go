package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpen corrupts a valid queue file and opens it every way there is.
// The contract it checks:
//   - no opener panics;
//   - Open, OpenFast and OpenReadOnly either succeed or return an error
//     wrapping ErrCorrupt or ErrNewerSchema (OpenReadOnly: or ErrOldSchema,
//     for a header that claims an empty queue of schema 0);
//   - a refused file is left byte for byte as it was;
//   - no opener takes seconds;
//   - on a queue that opened, Status and Claim succeed or return an error
//     wrapping ErrCorrupt (OpenFast and OpenReadOnly check pages only as
//     queries read them).
//
// The seeds run in every `go test`; to search for more, run
//
//	go test ./queue -run XXX -fuzz FuzzOpen -fuzztime 60s
//
// The input is a list of 3-byte patches: a big-endian uint16 offset and a
// byte to write there. Offsets below 0x8000 land in the 100-byte SQLite
// header (offset % 100), the others anywhere in the file.
func FuzzOpen(f *testing.F) {
	base := filepath.Join(f.TempDir(), "base.db")
	q, err := Open(base)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, storePaths("fuzz", 300)); err != nil {
		f.Fatal(err)
	}
	if _, err := q.Claim(ctx, 10, t0, Everything); err != nil {
		f.Fatal(err)
	}
	if err := q.SetMeta(ctx, "mark", "1"); err != nil {
		f.Fatal(err)
	}
	if err := q.Close(); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}

	header := func(off int, b ...byte) []byte { // patches at header offset off
		var p []byte
		for i, v := range b {
			p = append(p, 0, byte(off+i), v)
		}
		return p
	}
	f.Add([]byte{})                                   // the valid file
	f.Add(header(60, 0xff, 0xff, 0xff, 0xfb))         // user_version -5
	f.Add(header(60, 0, 0, 0, 0))                     // user_version 0
	f.Add(header(60, 0, 0, 0, 2))                     // a newer schema
	f.Add(header(68, 1, 2, 3, 4))                     // another application_id
	f.Add(header(16, 0x01, 0x00))                     // page size 256
	f.Add(header(16, 0x12, 0x34))                     // page size not a power of 2
	f.Add(header(18, 9, 9))                           // unknown file format
	f.Add(header(20, 200))                            // reserved bytes per page
	f.Add(header(28, 0, 0, 0xff, 0xff))               // database size in pages
	f.Add(header(32, 0, 0, 0, 3, 0, 0, 0, 9))         // a bogus freelist
	f.Add(header(40, 0, 0, 0, 77))                    // schema cookie
	f.Add(header(44, 0, 0, 0, 9))                     // schema format 9
	f.Add(header(56, 0, 0, 0, 9))                     // text encoding 9
	f.Add([]byte{0x80, 0x00, 0x00, 0x80, 0x64, 0xff}) // page 1 b-tree header
	f.Add([]byte{0x90, 0x00, 0xa5, 0x90, 0x01, 0xa5}) // page 2+
	f.Add(bytes.Repeat([]byte{0xa0, 0x10, 0x00}, 64))

	f.Fuzz(func(t *testing.T, patches []byte) {
		damaged := bytes.Clone(valid)
		for ; len(patches) >= 3; patches = patches[3:] {
			off := int(binary.BigEndian.Uint16(patches))
			if off < 0x8000 {
				off %= 100
			}
			damaged[off%len(damaged)] = patches[2]
		}
		for name, open := range map[string]func(string) (*Queue, error){
			"Open": Open, "OpenFast": OpenFast, "OpenReadOnly": OpenReadOnly,
		} {
			path := filepath.Join(t.TempDir(), "queue.db")
			writeFile(t, path, damaged)
			start := time.Now()
			q, err := open(path)
			if took := time.Since(start); took > 5*time.Second {
				// A post-build-hook blocks the build while it opens.
				t.Fatalf("%s took %v", name, took)
			}
			if err != nil {
				wantAny := []error{ErrCorrupt, ErrNewerSchema}
				if name == "OpenReadOnly" {
					wantAny = append(wantAny, ErrOldSchema, ErrEmpty)
				}
				if !isAny(err, wantAny...) {
					t.Fatalf("%s: %v, want an error wrapping one of %v", name, err, wantAny)
				}
				if !bytes.Equal(readFile(t, path), damaged) {
					t.Fatalf("%s refused the file (%v) but changed it", name, err)
				}
				continue
			}
			if _, err := q.Status(ctx, t0); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s, then Status: %v, want nil or ErrCorrupt", name, err)
			}
			if _, err := q.Claim(ctx, 5, t0, Everything); err != nil && !isAny(err, ErrCorrupt, ErrReadOnly) {
				t.Errorf("%s, then Claim: %v, want nil or ErrCorrupt", name, err)
			}
			if err := q.Close(); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s, then Close: %v", name, err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("%s, Status, Claim and Close took %v", name, took)
			}
		}
	})
}

func isAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
