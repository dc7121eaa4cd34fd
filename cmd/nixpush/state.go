package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"nixpush/queue"
)

// defaultStateDir is where queues live: /var/lib/nixpush for root (the
// systemd StateDirectory), $XDG_STATE_HOME/nixpush otherwise, unless
// NIXPUSH_STATE_DIR says else.
func defaultStateDir() string {
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

// queueFileSuffix ends every queue file's name.
const queueFileSuffix = ".queue.db"

// cacheMetaKey records, in each queue, the cache its items are bound for.
const cacheMetaKey = "cache"

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// queueFile names the queue of one cache: every command pushing to that
// cache (a daemon, a push, a watch-exec) shares it, and queues of
// different caches never mix, since an item does not say where it goes.
func queueFile(stateDir, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	slug := strings.Trim(unsafeChars.ReplaceAllString(identity, "_"), "_")
	if len(slug) > 60 {
		slug = slug[len(slug)-60:]
	}
	return filepath.Join(stateDir, slug+"-"+hex.EncodeToString(sum[:4])+queueFileSuffix)
}

// openQueue opens (creating) the queue of a cache. Only the daemon, which
// runs for months, pays for a full page check of the file at start; the
// quick commands skip it (a damaged page still fails when read).
func openQueue(ctx context.Context, stateDir, identity string, checkPages bool) (*queue.Queue, error) {
	open := queue.OpenFast
	if checkPages {
		open = queue.Open
	}
	// A write lock held by another process (a long `retry`, a backup) is
	// waited out: each try already waits for the busy timeout.
	q, err := open(queueFile(stateDir, identity))
	for try := 1; errors.Is(err, queue.ErrBusy) && try < 6 && ctx.Err() == nil; try++ {
		q, err = open(queueFile(stateDir, identity))
	}
	if err != nil {
		return nil, err
	}
	if _, ok, err := q.GetMeta(ctx, cacheMetaKey); err == nil && !ok {
		err = q.SetMeta(ctx, cacheMetaKey, identity)
	}
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return q, nil
}

// queueFiles lists the queues in a state directory.
func queueFiles(stateDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(stateDir, "*"+queueFileSuffix))
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return files, nil
}

// quoteInput shows user input in a message safely: input with control
// or invalid bytes (a NUL from a bad script) is shown quoted and escaped.
func quoteInput(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
