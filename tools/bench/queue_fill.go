package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"nixpush/queue"
)

// The queue suite's size: rows in all, and paths per Enqueue call (the
// watcher enqueues at most 5,000 registrations per transaction too).
const (
	queueRows  = 100_000
	queueBatch = 5_000
)

// nixBase32 is the alphabet of store path hashes.
const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

var packageNames = []string{"glibc", "hello", "python3", "openssl", "source", "rust-lib", "node-module", "bench-out"}

// syntheticStorePaths returns n distinct, realistic-looking store paths.
func syntheticStorePaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		sum := sha256.Sum256(fmt.Appendf(nil, "queue suite %d", i))
		hash := make([]byte, 32)
		for j := range hash {
			hash[j] = nixBase32[sum[j]%32]
		}
		paths[i] = fmt.Sprintf("/nix/store/%s-%s-%d.%d", hash, packageNames[i%len(packageNames)], i%97, i%13)
	}
	return paths
}

// enqueueRun is one timed fill of an empty queue.
type enqueueRun struct {
	Wall, CPU time.Duration // CPU: the bench process's, in-process SQLite included
}

// timeEnqueue creates the queue at file and enqueues paths into it,
// queueBatch per call, timing only the Enqueue calls.
func timeEnqueue(ctx context.Context, file string, paths []string) (enqueueRun, error) {
	q, err := queue.Open(file)
	if err != nil {
		return enqueueRun{}, err
	}
	defer q.Close()
	cpu0, start := selfCPU(), time.Now()
	added := 0
	for i := 0; i < len(paths); i += queueBatch {
		n, err := q.Enqueue(ctx, paths[i:min(i+queueBatch, len(paths))])
		if err != nil {
			return enqueueRun{}, err
		}
		added += n
	}
	r := enqueueRun{Wall: time.Since(start), CPU: selfCPU() - cpu0}
	if added != len(paths) {
		return r, fmt.Errorf("enqueue added %d rows of %d", added, len(paths))
	}
	return r, nil
}

// queueMix is the state mix the status runs read, by row position mod 20.
var queueMix = []struct {
	share int // of 20
	what  string
}{
	{12, "done (finished over the last two hours)"},
	{1, "failed (403, 1 attempt)"},
	{1, "skipped (gone)"},
	{1, "uploading (claimed by the bench process)"},
	{2, "pending in backoff with an error (503)"},
	{3, "pending, due, never tried"},
}

// mixTimes is how long making the mix took, for the notes.
type mixTimes struct{ Claim, Settle time.Duration }

// mixQueue turns the filled queue at file into the realistic mix of
// queueMix through the queue's own API: claim every row, then settle
// each by its position. Done rows finish in 20 steps over two hours.
func mixQueue(ctx context.Context, file, cache string) (mixTimes, error) {
	var m mixTimes
	q, err := queue.Open(file)
	if err != nil {
		return m, err
	}
	defer q.Close()
	// `nixpush status` shows which cache a queue is for.
	if err := q.SetMeta(ctx, "cache", cache); err != nil {
		return m, err
	}
	now := time.Now()
	start := time.Now()
	var claimed []queue.Item
	for {
		items, err := q.Claim(ctx, queueBatch, now, queue.Everything)
		if err != nil {
			return m, err
		}
		if len(items) == 0 {
			break
		}
		claimed = append(claimed, items...)
	}
	m.Claim = time.Since(start)
	if len(claimed) != queueRows {
		return m, fmt.Errorf("claimed %d rows of %d", len(claimed), queueRows)
	}
	start = time.Now()
	for k := 0; k*queueBatch < len(claimed); k++ {
		batch := claimed[k*queueBatch : min((k+1)*queueBatch, len(claimed))]
		var outcomes []queue.Outcome
		for i, it := range batch {
			if o, ok := mixOutcome(k*queueBatch+i, it.Path, now); ok {
				outcomes = append(outcomes, o)
			}
		}
		finished := now.Add(-time.Duration(k) * 2 * time.Hour / (queueRows / queueBatch))
		n, err := q.Settle(ctx, outcomes, finished)
		if err != nil {
			return m, err
		}
		if n != len(outcomes) {
			return m, fmt.Errorf("settled %d outcomes of %d", n, len(outcomes))
		}
	}
	m.Settle = time.Since(start)
	return m, nil
}

// mixOutcome is what becomes of the row at position i; ok is false for a
// row left uploading.
func mixOutcome(i int, path string, now time.Time) (queue.Outcome, bool) {
	switch r := i % 20; {
	case r < 12:
		return queue.Outcome{Path: path, State: queue.Done, Bytes: 1000 + int64(i)}, true
	case r == 12:
		return queue.Outcome{Path: path, State: queue.Failed, Reason: "403 forbidden", Attempt: true}, true
	case r == 13:
		return queue.Outcome{Path: path, State: queue.Skipped, Reason: "gone: garbage-collected"}, true
	case r == 14:
		return queue.Outcome{}, false
	case r < 17:
		return queue.Outcome{Path: path, State: queue.Pending, Reason: "503 service unavailable",
			Next: now.Add(time.Duration(i) * time.Second), Attempt: true}, true
	default:
		return queue.Outcome{Path: path, State: queue.Pending}, true
	}
}
