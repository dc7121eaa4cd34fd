package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"nixpush/memo"
	"nixpush/queue"
)

// The state dir holds, per cache, its queue and its memo. Every command
// pushing to a cache (a daemon, a push, a watch-exec, enqueue) shares its
// queue; queues of different caches never mix, since an item does not
// say where it goes.

// DefaultStateDir is where queues live: /var/lib/nixpush for root (the
// systemd StateDirectory), $XDG_STATE_HOME/nixpush otherwise, unless
// NIXPUSH_STATE_DIR says else.
func DefaultStateDir() string {
	if d := os.Getenv("NIXPUSH_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/nixpush"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "nixpush")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local/state/nixpush")
}

// QueueSuffix ends every queue file's name.
const QueueSuffix = ".queue.db"

// CacheMetaKey records, in each queue, the cache its items are bound for.
const CacheMetaKey = "cache"

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// QueueFile names the queue of the cache with this identity.
func QueueFile(stateDir, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	slug := strings.Trim(unsafeChars.ReplaceAllString(identity, "_"), "_")
	if len(slug) > 60 {
		slug = slug[len(slug)-60:]
	}
	return filepath.Join(stateDir, slug+"-"+hex.EncodeToString(sum[:4])+QueueSuffix)
}

// MemoFile is the file of a cache's memo, beside its queue.
func MemoFile(stateDir, identity string) string {
	return strings.TrimSuffix(QueueFile(stateDir, identity), QueueSuffix) + memo.FileSuffix
}

// QueueFiles lists the queues in a state directory; one that does not
// exist holds none. A directory this process cannot read is an error,
// never "no queues".
func QueueFiles(stateDir string) ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state dir: %w", err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), QueueSuffix) {
			files = append(files, filepath.Join(stateDir, e.Name()))
		}
	}
	return files, nil
}

// OpenQueue opens (creating) the queue of a cache. Only the daemon, which
// runs for months, pays for a full page check of the file at start; the
// quick commands skip it (a damaged page still fails when read).
func OpenQueue(ctx context.Context, stateDir, identity string, checkPages bool) (*queue.Queue, error) {
	open := queue.OpenFast
	if checkPages {
		open = queue.Open
	}
	// A write lock held by another process (a long `retry`, a backup) is
	// waited out: each try already waits for the busy timeout.
	q, err := open(QueueFile(stateDir, identity))
	for try := 1; errors.Is(err, queue.ErrBusy) && try < 6 && ctx.Err() == nil; try++ {
		q, err = open(QueueFile(stateDir, identity))
	}
	if err != nil {
		return nil, err
	}
	if _, ok, err := q.GetMeta(ctx, CacheMetaKey); err == nil && !ok {
		err = q.SetMeta(ctx, CacheMetaKey, identity)
	}
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return q, nil
}
