package uploader_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// TestNARDeterministic: a NAR compresses to the same bytes whatever the
// machine's cores or how the stream is cut into writes, so its content
// name (ContentNARKey) can be shared by machines; other settings give
// other names.
func TestNARDeterministic(t *testing.T) {
	data := make([]byte, 9<<20) // over smallNAR: compressed in parallel jobs
	if _, err := rand.Read(data[:3<<20]); err != nil {
		t.Fatal(err)
	}
	for i := 3 << 20; i < len(data); i++ {
		data[i] = byte(i / 1000)
	}
	for _, c := range []uploader.Compression{uploader.DefaultCompression, {Method: "zstd", Level: 9, HasLevel: true, Parallel: true},
		{Method: "xz", Level: 1, HasLevel: true}, {Method: "xz", Level: 1, HasLevel: true, Parallel: true}, {Method: "br", Level: 5, HasLevel: true}} {
		var outs [][]byte
		for _, chunk := range []int{1 << 20, 4096, 777} {
			var b bytes.Buffer
			w, err := c.NewWriter(&b, uint64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(data); off += chunk {
				if _, err := w.Write(data[off:min(off+chunk, len(data))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, b.Bytes())
		}
		for _, o := range outs[1:] {
			if !bytes.Equal(o, outs[0]) {
				t.Errorf("%v: the same NAR gave other bytes when written in other pieces", c)
			}
		}
	}
	ids := map[string]bool{}
	for _, c := range []uploader.Compression{{Method: "zstd"}, {Method: "zstd", Level: 9, HasLevel: true}, {Method: "zstd", Parallel: true},
		{Method: "xz"}, {Method: "xz", Level: 1, HasLevel: true}, {Method: "br"}, {Method: "none"}} {
		ids[c.EncoderID()] = true
	}
	if len(ids) != 7 || (uploader.Compression{Method: "zstd"}).EncoderID() != (uploader.Compression{Method: "zstd", Level: 1, HasLevel: true}).EncoderID() ||
		(uploader.Compression{Method: "xz"}).EncoderID() != (uploader.Compression{Method: "xz", Level: 6, HasLevel: true}).EncoderID() {
		t.Errorf("encoder ids %v: want one per setting, the defaults being their levels (zstd 1, xz 6)", ids)
	}
}

// machines are n Uploaders with memos of their own, as n build machines.
func machines(t *testing.T, st *nixstore.Store, c cache.Cache, n int) []*uploader.Uploader {
	key, _, _, _ := keygen(t, "dedup-1")
	var us []*uploader.Uploader
	for range n {
		us = append(us, uploader.New(st, c, uploader.DefaultCompression, []signature.SecretKey{key}, 1, zaptest.NewLogger(t)))
	}
	return us
}

// pushAll pushes infos from every machine at once.
func pushAll(t *testing.T, us []*uploader.Uploader, infos []*nixstore.PathInfo) {
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Go(func() {
			if _, errs := collect(u.Upload(t.Context(), infos)); len(errs) > 0 {
				t.Error(errs)
			}
		})
	}
	wg.Wait()
}

func s3Cache(t *testing.T, v *servertest.Versitygw, endpoint string) *s3cache.Cache {
	u := v.URL("")
	q := u.Query()
	q.Set("endpoint", endpoint)
	c, err := s3cache.New(t.Context(), &url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: q.Encode()}, s3cache.Config{PartSize: s3cache.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSameNARStoredOnce: machines pushing the same paths at once, to a
// directory and to an S3 bucket, store each NAR once, and every narinfo
// describes the object it names (Nix substitutes all of it).
func TestSameNARStoredOnce(t *testing.T) {
	s := nixtest.NewStore(t)
	small := addFile(t, s, "dedup-small", "small and shared")
	big := addFile(t, s, "dedup-big", strings.Repeat("multipart when pushed to S3 in 5 MiB parts; ", 300000))
	st := openStore(t, s)
	infos, err := st.Closure(t.Context(), []string{small, big})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, pub := keygen(t, "dedup-1")
	v := servertest.StartVersitygw(t)
	fc, dir := newFileCache(t)
	for name, tc := range map[string]struct {
		c   cache.Cache
		dir string
	}{"file": {fc, dir}, "s3": {s3Cache(t, v, v.Addr), v.BucketDir()}} {
		pushAll(t, machines(t, st, tc.c, 4), infos)
		nars, _ := filepath.Glob(filepath.Join(tc.dir, "nar", "*"))
		if len(nars) != 2 {
			t.Errorf("%s: %d NAR objects for 2 paths pushed by 4 machines: %q", name, len(nars), nars)
		}
		if out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+tc.dir, pub, small, big); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// TestTakenNameNotTrusted: an object under a NAR's content name is named
// by a new narinfo only if it holds the upload's bytes and was written
// during it; a damaged one, or an old one (an orphan a gc may be about
// to delete), makes the upload write an object of its own.
func TestTakenNameNotTrusted(t *testing.T) {
	s := nixtest.NewStore(t)
	st := openStore(t, s)
	_, _, _, pub := keygen(t, "dedup-1")
	for name, spoil := range map[string]func(file string){
		"damaged": func(file string) {
			b, _ := os.ReadFile(file)
			b[len(b)-5] ^= 0xff
			os.WriteFile(file, b, 0o644)
		},
		"old": func(file string) {
			old := time.Now().Add(-time.Hour)
			os.Chtimes(file, old, old)
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := addFile(t, s, "taken-"+name, "content of "+name)
			info, err := st.QueryPathInfo(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			fc, dir := newFileCache(t)
			us := machines(t, st, fc, 2)
			pushAll(t, us[:1], []*nixstore.PathInfo{info})
			first := filepath.Join(dir, uploader.ContentNARKey(info, uploader.DefaultCompression))
			spoil(first)
			if err := os.Remove(filepath.Join(dir, cache.NarInfoKey(p))); err != nil {
				t.Fatal(err)
			}
			pushAll(t, us[1:], []*nixstore.PathInfo{info})
			ni := readNarInfo(t, dir, p)
			if ni.URL == uploader.ContentNARKey(info, uploader.DefaultCompression) {
				t.Errorf("the narinfo names the %s object under the content name", name)
			}
			if out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+dir, pub, p); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
}

// memJournal is an uploader.Journal in memory, as the queue keeps it.
type memJournal struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (j *memJournal) LoadUpload(_ context.Context, path string) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[path], nil
}

func (j *memJournal) SaveUpload(_ context.Context, path string, state []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if state == nil {
		delete(j.m, path)
	} else {
		j.m[path] = state
	}
	return nil
}

// TestUploadContinues: a NAR upload cut short (a shutdown) is continued
// by the next Uploader with the same journal (a restarted process): the
// parts on the server are not sent again, the NAR lands whole, and
// neither the journal nor the server keeps the upload.
func TestUploadContinues(t *testing.T) {
	s := nixtest.NewStore(t)
	data := make([]byte, 30<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := addFile(t, s, "resumed", string(data))
	st := openStore(t, s)
	info, err := st.QueryPathInfo(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, pub := keygen(t, "dedup-1")
	v := servertest.StartVersitygw(t)
	px, err := servertest.StartS3Proxy(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	j := &memJournal{m: map[string][]byte{}}
	first := machines(t, st, s3Cache(t, v, px.Addr), 1)[0]
	first.Journal = j
	ctx, cancel := context.WithCancel(t.Context())
	go func() { // cut it short once the server keeps two parts
		for px.Answered("UploadPart") < 2 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	res := first.Upload(ctx, []*nixstore.PathInfo{info})
	if err := res[p].Err; err == nil || ctx.Err() == nil {
		t.Fatalf("interrupted upload: %v (context %v)", err, ctx.Err())
	}
	if len(j.m) != 1 {
		t.Fatalf("journal after the interruption: %d uploads", len(j.m))
	}
	kept := keptParts(t, j.m[p])
	sentBefore := px.BytesSent()
	px.Reset()
	second := machines(t, st, s3Cache(t, v, px.Addr), 1)[0]
	second.Journal = j
	if _, errs := collect(second.Upload(t.Context(), []*nixstore.PathInfo{info})); len(errs) > 0 {
		t.Fatal(errs)
	}
	ni := readNarInfo(t, v.BucketDir(), p)
	t.Logf("%d MiB sent, %d parts kept, then %d MiB, for %d MiB", sentBefore>>20, kept, px.BytesSent()>>20, ni.FileSize>>20)
	// The second process sends what the kept parts do not hold: a kept
	// part sent again shows as a whole part (5 MiB) over. Less than a part
	// over is bytes of the cancelled upload's parts that the proxy was
	// still passing on when it was reset (as in s3cache's TestResumeMultipart).
	if want := int64(ni.FileSize) - int64(kept)*s3cache.MinPartSize; px.BytesSent()-want >= s3cache.MinPartSize {
		t.Errorf("the continued upload sent %d bytes, %d beyond the %d the %d kept parts leave: parts on the server were sent again",
			px.BytesSent(), px.BytesSent()-want, want, kept)
	}
	if len(j.m) != 0 {
		t.Errorf("journal keeps %d uploads after the NAR landed", len(j.m))
	}
	if out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+v.BucketDir(), pub, p); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(v.BucketDir(), ".sgwtmp", "multipart", "*", "*")); len(leftovers) > 0 {
		t.Errorf("uploads left on the server: %q", leftovers)
	}
}

// keptParts is how many finished parts a journal entry holds, at least one
// (else the interruption came too early to test anything).
func keptParts(t *testing.T, state []byte) int {
	t.Helper()
	var entry struct{ State []byte } // the uploader's entry holds the cache's state
	var st struct{ Parts []struct{ N int32 } }
	err := json.Unmarshal(state, &entry)
	if err == nil {
		err = json.Unmarshal(entry.State, &st)
	}
	if err != nil || len(st.Parts) == 0 {
		t.Fatalf("journal after the interruption: %s (%v)", state, err)
	}
	return len(st.Parts)
}
