package uploader_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// TestFailedNARLeavesNoWriteBehind: a path's build log goes up beside
// its NAR; when the NAR fails, the log's upload is stopped and waited
// for, so nothing of the path is written after Upload returns (an
// in-process push that failed left a goroutine writing the log into a
// cache its test was already deleting).
func TestFailedNARLeavesNoWriteBehind(t *testing.T) {
	s := nixtest.NewStore(t)
	dep := s.Build(t, nixtest.WithReference("behind"))[0]
	corrupt(t, filepath.Join(s.Real(dep), "greeting"))
	key, _, _, _ := keygen(t, "behind-key")
	st := openStore(t, s)
	info, err := st.QueryPathInfo(t.Context(), dep)
	if err != nil {
		t.Fatal(err)
	}
	fc, _ := newFileCache(t)
	cc := newCountingCache(fc)
	var started, running atomic.Int32
	logBegan := make(chan struct{})
	cc.before = func(ctx context.Context, key string) error {
		if strings.HasPrefix(key, "nar/") {
			// The NAR fails only once the log is on its way: a NAR
			// that failed first would leave the test nothing to show.
			select {
			case <-logBegan:
			case <-ctx.Done():
			}
			return nil
		}
		if !strings.HasPrefix(key, "log/") {
			return nil
		}
		if started.Add(1) == 1 {
			close(logBegan)
		}
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done() // a log slower than its NAR
		return ctx.Err()
	}
	u := uploader.New(st, cc, uploader.DefaultCompression, []signature.SecretKey{key}, 1, zaptest.NewLogger(t))
	u.Logs = true
	_, errs := collect(u.Upload(t.Context(), []*nixstore.PathInfo{info}))
	if len(errs) != 1 || !errors.Is(errs[0], uploader.ErrHashMismatch) {
		t.Fatalf("Upload of a corrupted path: %v, want its hash mismatch", errs)
	}
	if started.Load() == 0 {
		t.Fatal("no build log upload began: the test shows nothing")
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d build log upload(s) still running after Upload returned", n)
	}
}
