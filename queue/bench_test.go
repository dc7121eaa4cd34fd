package queue

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

const benchRows = 100_000

// hashedPaths are n store paths in the order of their hashes, which is
// random: a queue's path index takes and finds them at random places, as
// it does a real store's (storePaths, in order, would keep its writes on
// the index's last pages).
func hashedPaths(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		h := sha256.Sum256([]byte(strconv.Itoa(i)))
		out[i] = fmt.Sprintf("/nix/store/%x-%s-%d", h[:16], prefix, i)
	}
	return out
}

// BenchmarkEnqueue100k enqueues 100,000 new paths in one call, as a large
// `push` or a first watch of a big store would.
func BenchmarkEnqueue100k(b *testing.B) {
	ctx := context.Background()
	paths := hashedPaths("bench", benchRows)
	elapsed := onFreshQueues(b, benchRows, func(q *Queue) (int, error) { return q.Enqueue(ctx, paths) })
	b.ReportMetric(float64(benchRows*b.N)/elapsed.Seconds(), "paths/s")
}

// onFreshQueues runs work on a new queue in each iteration, timing work
// alone, and fails unless it handled rows paths; it returns the time
// work took in all.
func onFreshQueues(b *testing.B, rows int, work func(q *Queue) (int, error)) time.Duration {
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		q, err := Open(filepath.Join(b.TempDir(), "queue.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		n, err := work(q)
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil || n != rows {
			b.Fatalf("%d of %d paths, %v", n, rows, err)
		}
		q.Close()
		b.StartTimer()
	}
	return elapsed
}

// BenchmarkStatus100k runs Status on a freshly opened 100,000-row queue in
// a realistic mix of states; `nixpush status` must answer within 100 ms.
func BenchmarkStatus100k(b *testing.B) {
	ctx := context.Background()
	q := openFilled(b)
	for b.Loop() {
		st, err := q.Status(ctx, t0)
		if err != nil {
			b.Fatal(err)
		}
		if st.Counts[Done] == 0 || len(st.PendingErrors) == 0 {
			b.Fatalf("unexpected status %+v", st.Counts)
		}
	}
}

// BenchmarkOpen100k measures Open (PRAGMA quick_check included) and Close of
// a 100,000-row queue, the fixed cost of every nixpush command.
func BenchmarkOpen100k(b *testing.B) {
	path := openFilled(b).path
	for b.Loop() {
		q, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaim100k claims and completes from a 100,000-row queue with a
// large backlog, the drainer's inner loop.
func BenchmarkClaim100k(b *testing.B) {
	ctx := context.Background()
	q := openFilled(b)
	for b.Loop() {
		items, err := q.Claim(ctx, 4, t0, Everything)
		if err != nil || len(items) == 0 {
			b.Fatalf("Claim = %d items, %v", len(items), err)
		}
		for _, it := range items {
			if err := q.Unclaim(ctx, it.Path); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// openFilled returns a reopened queue of benchRows rows: 60% done over the
// last two hours, 5% each failed, skipped and uploading, 10% pending in
// backoff with an error, 15% pending and due.
func openFilled(b *testing.B) *Queue {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "queue.db")
	q, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, hashedPaths("bench", benchRows)); err != nil {
		b.Fatal(err)
	}
	sec, now := int64(time.Second), nanos(t0)
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE items SET state = 'done', finished_at = ? - (id % 7200) * ?, bytes = 1000 + id
			WHERE id % 20 < 12`, []any{now, sec}},
		{`UPDATE items SET state = 'failed', finished_at = ? - id * ?, attempts = 5,
			last_error = '403 forbidden' WHERE id % 20 = 12`, []any{now, sec}},
		{`UPDATE items SET state = 'skipped', finished_at = ?, last_error = 'gone'
			WHERE id % 20 = 13`, []any{now}},
		{`UPDATE items SET state = 'uploading', owner = ?, owner_token = ?
			WHERE id % 20 = 14`, []any{os.Getpid(), processToken(os.Getpid())}},
		{`UPDATE items SET next_attempt = ? + id * ?, attempts = 2, last_error = '503'
			WHERE id % 20 IN (15, 16)`, []any{now, sec}},
	} {
		if _, err := q.w.Exec(stmt.sql, stmt.args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	if q, err = Open(path); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// BenchmarkPush is what a first push of a closure asks of the queue, at
// 20,000 and 100,000 paths: the closure enqueued into a scope in parts of
// 2,048, then claimed 256 at a time and settled done. Its µs/path should
// not grow with the closure.
func BenchmarkPush(b *testing.B) {
	for _, rows := range []int{20_000, benchRows} {
		b.Run(fmt.Sprintf("%dk", rows/1000), func(b *testing.B) { benchPush(b, rows) })
	}
}

func benchPush(b *testing.B, rows int) {
	ctx := context.Background()
	paths := hashedPaths("bench", rows)
	elapsed := onFreshQueues(b, rows, func(q *Queue) (int, error) {
		scope, err := q.NewScope(ctx)
		if err != nil {
			return 0, err
		}
		for part := range slices.Chunk(paths, 2048) {
			if _, err := q.RequeueIn(ctx, scope, part); err != nil {
				return 0, err
			}
		}
		settled := 0
		for {
			items, err := q.Claim(ctx, 256, t0, scope)
			if err != nil || len(items) == 0 {
				return settled, err
			}
			outcomes := make([]Outcome, len(items))
			for j, it := range items {
				outcomes[j] = Outcome{Path: it.Path, ID: it.ID, State: Done, Bytes: 2000}
			}
			n, err := q.Settle(ctx, outcomes, t0)
			if err != nil {
				return settled, err
			}
			settled += n
		}
	})
	b.ReportMetric(float64(elapsed.Microseconds())/float64(rows*b.N), "µs/path")
}
