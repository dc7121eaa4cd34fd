package s3cache

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"nixpush/cache"
	"nixpush/retry"
)

// upload is one multipart upload: started by this Put, or continued from
// the state a cache.Resumable body saved when an earlier process was
// killed mid-upload.
//
// Continuing is safe because nothing is trusted that is not checked: the
// body is read again from its start (a NAR stream is produced afresh),
// and a part the server lists is kept only if its size matches and its
// bytes are the ones just read: its ETag is their MD5 (S3's ETag of a
// part, unless the bucket encrypts with KMS), or it is the ETag the
// state recorded for a part whose MD5 it recorded too. Any other part is
// sent again under its number, which replaces it. Parts keep the size
// the upload began with, since some servers (R2) want every part but the
// last the same size.
type upload struct {
	c           *Cache
	key         string
	contentType string
	create      bool // complete with If-None-Match: *

	journal  cache.Resumable // nil: the upload does not outlive this Put
	id       string          // "" until created or continued
	partSize int64
	listed   map[int32]types.Part // the server's parts of a continued upload
	saved    map[int32]savedPart  // the parts its state recorded

	mu        sync.Mutex
	done      map[int32]savedPart // parts in place for this upload
	completed bool
}

// uploadState is what a Resumable body keeps of an upload.
type uploadState struct {
	Key      string      `json:"key"`
	UploadID string      `json:"upload_id"`
	PartSize int64       `json:"part_size"`
	Parts    []savedPart `json:"parts"`
}

type savedPart struct {
	N    int32  `json:"n"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
	MD5  string `json:"md5"` // hex MD5 of the part's bytes
}

// load continues the upload the body saved, if it can: one for another
// key (the settings changed) can never finish and is aborted; one the
// server no longer has (aborted by gc) is forgotten.
func (u *upload) load(ctx context.Context, r io.Reader) error {
	j, ok := r.(cache.Resumable)
	if !ok {
		return nil
	}
	u.journal = j
	raw := j.ResumeState()
	if raw == nil {
		return nil
	}
	var st uploadState
	if err := json.Unmarshal(raw, &st); err != nil || st.UploadID == "" || st.PartSize < MinPartSize || st.PartSize > maxPartSize {
		j.SaveResumeState(nil)
		return nil
	}
	if st.Key != u.key {
		u.c.abandon(ctx, st.Key, st.UploadID)
		j.SaveResumeState(nil)
		return nil
	}
	listed, err := u.c.listParts(ctx, st.Key, st.UploadID)
	if isGone(err) {
		j.SaveResumeState(nil)
		return nil
	}
	if err != nil {
		return u.c.classify("put "+u.key+": list the parts of the upload to continue", err)
	}
	u.id, u.partSize, u.listed = st.UploadID, st.PartSize, listed
	u.saved = map[int32]savedPart{}
	for _, p := range st.Parts {
		u.saved[p.N] = p
	}
	return nil
}

// run uploads first (n bytes, a full part) and the rest of r in parts of
// first's size, with up to inFlight parts in flight, and completes the
// upload. Buffers circulate through free: a part is read only once an
// earlier one has been sent, so at most inFlight buffers exist.
func (u *upload) run(ctx context.Context, r io.Reader, first *[]byte, n int, inFlight int) error {
	c := u.c
	u.done = map[int32]savedPart{}
	if u.id == "" {
		var created *s3.CreateMultipartUploadOutput
		err := c.call(ctx, func() (err error) {
			created, err = c.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
				Bucket:      aws.String(c.bucket),
				Key:         aws.String(c.key(u.key)),
				ContentType: optional(u.contentType),
			})
			return err
		})
		if err != nil {
			c.putPart(first)
			return c.classify("put "+u.key, err)
		}
		u.id = aws.ToString(created.UploadId)
		u.save()
	}

	// An upload that outlives this Put runs its parts on ctx: cut off by
	// a shutdown, a part is simply not listed and is sent again by the
	// next process. One that dies with this Put lets the parts in flight
	// finish (boundedly) before it is aborted: a part cut off mid-request
	// could land on the server after the abort and stay there.
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if u.journal == nil {
		pctx, cancel = c.graceContext(ctx)
	}
	defer cancel()
	var (
		g        errgroup.Group
		failed   = make(chan struct{}) // closed at the first failed part
		failOnce sync.Once
	)
	free := make(chan *[]byte, inFlight) // nil: not allocated yet
	for range inFlight - 1 {
		free <- nil
	}
	send := func(num int32, buf *[]byte, n int) {
		g.Go(func() error {
			defer func() { free <- buf }()
			if err := u.sendPart(pctx, num, (*buf)[:n]); err != nil {
				failOnce.Do(func() { close(failed) })
				return err
			}
			return nil
		})
	}

	send(1, first, n)
	readErr := func() error {
		for num := int32(2); ; num++ {
			var buf *[]byte
			select {
			case buf = <-free:
			case <-failed:
				return nil // g.Wait reports it
			case <-ctx.Done():
				return nil
			}
			if ctx.Err() != nil || isClosed(failed) {
				free <- buf
				return nil
			}
			if buf == nil {
				buf = c.getPart(u.partSize)
			}
			n, eof, err := readPart(r, *buf)
			switch {
			case err != nil:
				free <- buf
				return fmt.Errorf("put %s: read: %w", u.key, err)
			case n == 0: // r ended on a part boundary
				free <- buf
			case int64(num) > maxParts:
				free <- buf
				return retry.Permanent(fmt.Errorf("put %s: larger than %d parts of %d bytes: raise the part size", u.key, maxParts, u.partSize))
			default:
				send(num, buf, n)
			}
			if eof {
				return nil
			}
		}
	}()
	partErr := g.Wait()
	for range len(free) {
		if b := <-free; b != nil {
			c.putPart(b)
		}
	}

	var err error
	switch {
	case readErr != nil:
		err = readErr
	case ctx.Err() != nil:
		// Parts that failed after ctx ended (cut short by the grace)
		// failed because of it.
		err = fmt.Errorf("put %s: %w", u.key, ctx.Err())
	default:
		err = partErr
	}
	if err == nil {
		if err = u.complete(ctx); err == nil {
			return nil
		}
	}
	return u.fail(pctx, err)
}

// sendPart puts one part in place: it keeps the server's copy when that
// holds these very bytes (a continued upload), else uploads them with
// their MD5, which the server checks.
func (u *upload) sendPart(ctx context.Context, num int32, b []byte) error {
	sum := md5.Sum(b)
	hexSum := hex.EncodeToString(sum[:])
	if p, ok := u.listed[num]; ok && aws.ToInt64(p.Size) == int64(len(b)) {
		etag := aws.ToString(p.ETag)
		if saved := u.saved[num]; strings.Trim(etag, `"`) == hexSum || (saved.ETag == etag && saved.MD5 == hexSum) {
			u.record(savedPart{N: num, Size: int64(len(b)), ETag: etag, MD5: hexSum}, true)
			return nil
		}
	}
	var out *s3.UploadPartOutput
	err := u.c.call(ctx, func() (err error) {
		out, err = u.c.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(u.c.bucket),
			Key:           aws.String(u.c.key(u.key)),
			UploadId:      aws.String(u.id),
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(b),
			ContentLength: aws.Int64(int64(len(b))),
			ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		})
		return err
	})
	if err != nil {
		return u.c.classify(fmt.Sprintf("put %s: part %d", u.key, num), err)
	}
	u.record(savedPart{N: num, Size: int64(len(b)), ETag: aws.ToString(out.ETag), MD5: hexSum}, false)
	return nil
}

// record notes a part in place and saves the state, so that a process
// killed now sends it no more: a write to the queue file per part (about
// 70 bytes a part: 700 KB per save at S3's 10,000 parts, small beside
// the part it records).
func (u *upload) record(p savedPart, reused bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done[p.N] = p
	if !reused {
		u.saveLocked()
	}
}

// save records the upload in the body's state.
func (u *upload) save() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.saveLocked()
}

func (u *upload) saveLocked() {
	if u.journal == nil || u.completed {
		return
	}
	st := uploadState{Key: u.key, UploadID: u.id, PartSize: u.partSize}
	for _, p := range u.done {
		st.Parts = append(st.Parts, p)
	}
	slices.SortFunc(st.Parts, func(a, b savedPart) int { return int(a.N - b.N) })
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	u.journal.SaveResumeState(b)
}

// forget drops the saved state: the upload completed or is gone.
func (u *upload) forget() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.completed = true
	if u.journal != nil {
		u.journal.SaveResumeState(nil)
	}
}

// complete assembles the parts into the object.
func (u *upload) complete(ctx context.Context) error {
	c := u.c
	parts := make([]types.CompletedPart, 0, len(u.done))
	for _, p := range u.done {
		parts = append(parts, types.CompletedPart{ETag: aws.String(p.ETag), PartNumber: aws.Int32(p.N)})
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	err := c.call(ctx, func() error {
		in := &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(c.bucket),
			Key:             aws.String(c.key(u.key)),
			UploadId:        aws.String(u.id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		}
		if u.create {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := c.client.CompleteMultipartUpload(ctx, in)
		return err
	})
	if err == nil {
		u.forget()
		return nil
	}
	if u.create {
		if answer := c.conditionalAnswer(u.key, u.size(), u.etag(), err); answer != err {
			// The object is someone else's; this upload, left open by
			// the refusal, can never complete.
			u.forget()
			c.abandon(ctx, u.key, u.id)
			return answer
		}
	}
	return c.classify("put "+u.key+": complete multipart upload", err)
}

// size is the object's size, the sum of its parts.
func (u *upload) size() int64 {
	var n int64
	for _, p := range u.done {
		n += p.Size
	}
	return n
}

// etag is the ETag S3 gives the object these parts make: the MD5 of
// their MD5s, then "-" and their number.
func (u *upload) etag() string {
	sums := md5.New()
	for n := int32(1); n <= int32(len(u.done)); n++ {
		b, _ := hex.DecodeString(u.done[n].MD5)
		sums.Write(b)
	}
	return fmt.Sprintf("%x-%d", sums.Sum(nil), len(u.done))
}

// fail decides what becomes of an upload that failed with err, and
// returns err. One that can be continued stays on the server for the next
// Put of its body, unless it is gone or failed for good; one that
// cannot is aborted, or, when the server made no progress (a second
// request would only stall again), left to abortLeftovers.
func (u *upload) fail(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, errTaken), errors.Is(err, cache.ErrCannotCreate):
		return err // complete dealt with the upload
	case isGone(err):
		u.forget()
		return err
	case u.journal != nil && !retry.IsPermanent(err):
		u.save()
		return err
	case errors.Is(err, ErrStalled):
		u.forget()
		u.c.leftovers.add(u.key, u.id)
		return fmt.Errorf("%w (the multipart upload is aborted once the server answers again)", err)
	}
	u.forget()
	return u.c.abort(ctx, u.key, u.id, err)
}

// isGone reports an upload the server no longer has (completed or
// aborted, by gc or by a racing process).
func isGone(err error) bool { return err != nil && errorCode(err) == "NoSuchUpload" }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
