package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/retry"
)

// Journal keeps, per store path, what a backend saved of an upload in
// progress (a multipart upload's id and finished parts), so that a
// process started after a crash continues it instead of starting over.
// The queue keeps it beside the path's row.
type Journal interface {
	// LoadUpload is the state saved for path, nil if none.
	LoadUpload(ctx context.Context, path string) ([]byte, error)
	// SaveUpload records state for path; nil forgets it.
	SaveUpload(ctx context.Context, path string, state []byte) error
}

// resumeFrom is the smallest NAR whose upload can be continued: a
// backend uploads in parts only what is larger than a part (S3: at least
// 5 MiB), and compression makes a NAR smaller, not larger by more than a
// fraction. Smaller NARs skip the journal read.
const resumeFrom = 4 << 20

// reuseSlack is how much older than this upload an object found under
// this upload's name may be and still be taken as the same upload by
// another machine (see putNAROnce). gc's grace period must exceed a
// push's NAR-to-narinfo time plus this; its default, an hour, does.
const reuseSlack = 30 * time.Second

// putNAR streams the path's compressed NAR into the cache. An upload the
// server throttles is produced again and retried (retry.Throttle), as
// throttling is no failure; that only happens where the backend cannot
// send the request again itself (a streamed HTTP PUT).
func (u *Uploader) putNAR(ctx context.Context, info *nixstore.PathInfo) (Uploaded, error) {
	create, err := cache.CanCreate(ctx, u.Cache)
	if err != nil {
		return Uploaded{}, err
	}
	tr := u.transfers.start(info.Path, info.NarSize)
	defer u.transfers.end(info.Path)
	var up Uploaded
	err = retry.Throttle.WhileThrottled(ctx, func() (err error) {
		up, err = u.putNAROnce(ctx, info, tr, create)
		return err
	})
	if err != nil {
		return Uploaded{}, u.explain(ctx, info, err)
	}
	return up, nil
}

// putNAROnce uploads the NAR under its content name when the cache can
// create conditionally (see ContentNARKey), else under a name of its own
// (or the one a saved upload began with). Finding the content name taken
// means another process wrote the same bytes under it, normally: the
// object is named by this narinfo only if the server's checksum proves
// it holds this upload's very bytes (a damaged object does not) and it
// was written since this upload began (reuseSlack aside). An older one
// may be an orphan a running gc is about to delete (gc keeps only what
// was written within its grace period), so the NAR is then written again
// under a name of its own.
func (u *Uploader) putNAROnce(ctx context.Context, info *nixstore.PathInfo, tr *transfer, create bool) (Uploaded, error) {
	j := u.journalFor(ctx, info)
	key := NARKey(info, u.Compression)
	switch {
	case create:
		key = ContentNARKey(info, u.Compression)
	case j != nil && j.key != "" && strings.HasPrefix(j.key, cache.NARKeyPrefix(info)+"-") && strings.HasSuffix(j.key, ".nar"+u.Compression.Ext()):
		key = j.key // continue the saved upload under its name
	}
	start := time.Now()
	res, err := u.streamNAR(ctx, info, tr, key, j, create)
	var exists *cache.ExistsError
	switch {
	case errors.As(err, &exists):
		if exists.Identical && exists.Age <= time.Since(start)+reuseSlack {
			return res, nil
		}
		u.Log.Info("the object under the NAR's content name is not this upload's; writing one of its own",
			zap.String("path", info.Path), zap.Error(err))
	case errors.Is(err, cache.ErrCannotCreate):
		// The server gave itself away on this upload (501).
	default:
		return res, err
	}
	return u.streamNAR(ctx, info, tr, NARKey(info, u.Compression), j, false)
}

// streamNAR produces the NAR and writes it under key (create: only if
// the key is free). On cache.ErrExists the stream is still read to its
// end, so the result describes the bytes (and the NAR hash is checked).
func (u *Uploader) streamNAR(ctx context.Context, info *nixstore.PathInfo, tr *transfer, key string, j *narJournal, create bool) (Uploaded, error) {
	tr.read.Store(0) // a NAR produced again (throttled, a name taken) starts from 0 %
	s := openNARStream(u.Store, info, u.Compression, u.Listing, []*atomic.Int64{&tr.read, &u.Stats.Read})
	s.moved, s.sent = &u.Stats.Moved, &u.Stats.Sent
	defer s.Close()
	// A cancelled upload (shutdown timeout) must stop now, whatever the
	// backend does with ctx: failing a streamed NAR stops both the
	// producer and the backend's copy. (A NAR produced whole is read from
	// memory, which holds no backend up.)
	stop := context.AfterFunc(ctx, func() { s.stop(ctx.Err()) })
	defer stop()
	var body io.Reader = s
	if j != nil {
		body = &resumableStream{narStream: s, j: j, key: key}
	}
	var err error
	if create {
		err = cache.Create(ctx, u.Cache, key, body, cache.TypeNAR)
	} else {
		err = u.Cache.Put(ctx, key, body, cache.TypeNAR)
	}
	if errors.Is(err, cache.ErrExists) {
		if _, cerr := io.Copy(io.Discard, s); cerr != nil {
			return Uploaded{}, cerr
		}
		return s.result(key, u.Compression), err
	}
	if err != nil {
		return Uploaded{}, err
	}
	return s.result(key, u.Compression), nil
}

// narJournal is one path's saved upload: the uploader's envelope (the
// object's key, so an upload under a name of its own continues under
// that name) around the backend's state.
type narJournal struct {
	u       *Uploader
	path    string
	key     string // of the saved upload
	state   []byte // the backend's
	mu      sync.Mutex
	warned  bool
	journal Journal
}

type savedUpload struct {
	Key   string `json:"key"`
	State []byte `json:"state"` // the backend's, opaque
}

// journalFor reads what is saved for a path large enough to go up in
// parts; nil without a journal or for a small NAR.
func (u *Uploader) journalFor(ctx context.Context, info *nixstore.PathInfo) *narJournal {
	if u.Journal == nil || info.NarSize < resumeFrom {
		return nil
	}
	j := &narJournal{u: u, path: info.Path, journal: u.Journal}
	raw, err := u.Journal.LoadUpload(ctx, info.Path)
	var saved savedUpload
	if err == nil && raw != nil && json.Unmarshal(raw, &saved) == nil {
		j.key, j.state = saved.Key, saved.State
	} else if err != nil {
		u.Log.Warn("read the state of an interrupted upload; starting over", zap.String("path", info.Path), zap.Error(err))
	}
	return j
}

// save writes the backend's state for key (nil: forget). A failed write
// costs only a restart of the upload after a crash: it is logged once.
func (j *narJournal) save(key string, state []byte) {
	var raw []byte
	if state != nil {
		raw, _ = json.Marshal(savedUpload{Key: key, State: state})
	}
	err := j.journal.SaveUpload(context.Background(), j.path, raw)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.key, j.state = key, state
	if err != nil && !j.warned {
		j.warned = true
		j.u.Log.Warn("record an upload in progress; it starts over if nixpush stops", zap.String("path", j.path), zap.Error(err))
	}
}

// resumableStream is a NAR stream that offers a backend its saved state
// (cache.Resumable).
type resumableStream struct {
	*narStream
	j   *narJournal
	key string
}

func (r *resumableStream) ResumeState() []byte {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	return r.j.state
}

func (r *resumableStream) SaveResumeState(state []byte) { r.j.save(r.key, state) }

// Abandon gives up an upload a Journal saved for path when no process
// will continue it (the path was pushed by another process, failed for
// good, or left the queue): the backend aborts it, so its parts stop
// costing storage, and the journal forgets it.
func (u *Uploader) Abandon(ctx context.Context, path string, saved []byte) error {
	var s savedUpload
	if json.Unmarshal(saved, &s) == nil && s.State != nil {
		if err := cache.Abandon(ctx, u.Cache, s.State); err != nil {
			return err
		}
	}
	if u.Journal == nil {
		return nil
	}
	return u.Journal.SaveUpload(ctx, path, nil)
}
