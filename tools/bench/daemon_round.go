package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"nixpush/queue"
)

// daemonPathsPerRound is how many paths one round registers, one nix-store
// --add at a time, with a fresh daemon, queue and cache.
const daemonPathsPerRound = 200

// registration is one path a round added, and when each stage had it.
type registration struct {
	Path      string
	Start, T0 time.Time // nix-store --add started; returned (its DB commit is before)
	// Unlocked is when the path's .lock in the store dir was deleted:
	// just after the DB commit, so a closer origin than T0. Zero if
	// the bench did not see it.
	Unlocked time.Time
	Enqueued time.Time // the row's enqueued_at (daemon clock = this clock)
	Finished time.Time // the row's finished_at: upload recorded done
	InCache  time.Time // the bench saw the narinfo appear
}

// daemonRound is what one round found.
type daemonRound struct {
	Regs      []registration
	Wall      time.Duration // first add started → last narinfo seen
	DaemonCPU time.Duration // the daemon's CPU over Wall
	Others    float64       // cores the rest of the machine kept busy over Wall
	Problems  []string      // the daemon's warn/error log lines
}

// runDaemonRound starts watch-store on root with a fresh state dir and
// cache, adds daemonPathsPerRound new files one by one, waits for every
// narinfo and then reads the queue rows.
func runDaemonRound(ctx context.Context, b *bench, scratch, root string, round int) (*daemonRound, error) {
	dir := filepath.Join(scratch, fmt.Sprintf("round-%d", round))
	d := daemonDirs{Root: root, Cache: filepath.Join(dir, "cache"),
		State: filepath.Join(dir, "state"), Home: filepath.Join(dir, "home")}
	srcs, err := writeDaemonSources(filepath.Join(dir, "src"), round)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.Cache, 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	cw, err := watchFirstSeen(d.Cache, narinfoAppeared)
	if err != nil {
		return nil, err
	}
	defer cw.Close()
	lw, err := watchFirstSeen(filepath.Join(root, "nix", "store"), lockRemoved)
	if err != nil {
		return nil, err
	}
	defer lw.Close()
	ws, _, err := startWatchStore(ctx, b.bin, b.work.SecKey, d)
	if err != nil {
		return nil, err
	}
	defer ws.Stop() //nolint:errcheck // stopped and checked below; this is for early returns

	before, err := ws.Stats()
	if err != nil {
		return nil, err
	}
	busy0, self0, start := machineBusy(), selfCPU(), time.Now()
	env := cleanEnv(d.Home)
	r := &daemonRound{}
	var addCPU time.Duration
	for _, src := range srcs {
		reg, cpu, err := addOne(ctx, env, root, src)
		if err != nil {
			return nil, err
		}
		r.Regs = append(r.Regs, reg)
		addCPU += cpu
	}
	paths := make([]string, len(r.Regs))
	for i, reg := range r.Regs {
		paths[i] = reg.Path
	}
	if err := cw.WaitAll(ctx, paths, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("round %d: %w\n%s", round, err, ws.logTail())
	}
	r.Wall = time.Since(start)
	after, err := ws.Stats()
	if err != nil {
		return nil, err
	}
	busy1, self1 := machineBusy(), selfCPU()
	r.DaemonCPU = after.CPU - before.CPU
	if busy0 >= 0 && busy1 >= 0 {
		others := busy1 - busy0 - r.DaemonCPU - addCPU - (self1 - self0)
		r.Others = max(0, others.Seconds()/r.Wall.Seconds())
	}
	if err := ws.Stop(); err != nil {
		return nil, err
	}
	r.Problems = ws.Problems
	for i := range r.Regs {
		r.Regs[i].InCache, _ = cw.SeenAt(r.Regs[i].Path)
		r.Regs[i].Unlocked, _ = lw.SeenAt(r.Regs[i].Path)
	}
	if err := lw.Err(); err != nil {
		return nil, fmt.Errorf("watch store dir: %w", err)
	}
	return r, readQueueTimes(ctx, d.State, r.Regs)
}

// addOne runs one nix-store --add and returns the registration with its
// start and return times, and the command's CPU time.
func addOne(ctx context.Context, env []string, root, src string) (registration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "nix-store", "--store", root, "--add", src)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	t0 := time.Now()
	if err != nil {
		return registration{}, 0, fmt.Errorf("nix-store --add %s: %w\n%s", src, err, errb.String())
	}
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	}
	return registration{Path: strings.TrimSpace(out.String()), Start: start, T0: t0}, cpu, nil
}

// selfCPU is the bench process's own CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// writeDaemonSources writes the round's small files: distinct content
// per round, so every add registers a new path.
func writeDaemonSources(dir string, round int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write sources: %w", err)
	}
	var srcs []string
	for i := range daemonPathsPerRound {
		src := filepath.Join(dir, fmt.Sprintf("latency-%03d", i))
		text := fmt.Sprintf("daemon suite, round %d, path %d, written %s\n", round, i, time.Now().Format(time.RFC3339Nano))
		if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write sources: %w", err)
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// readQueueTimes fills in enqueued_at and finished_at from the daemon's
// queue (the one *.queue.db of the state dir), once the daemon is gone.
func readQueueTimes(ctx context.Context, stateDir string, regs []registration) error {
	files, err := filepath.Glob(filepath.Join(stateDir, "*.queue.db"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("find the queue in %s: %d files, %v", stateDir, len(files), err)
	}
	q, err := queue.Open(files[0])
	if err != nil {
		return err
	}
	defer q.Close()
	paths := make([]string, len(regs))
	for i, r := range regs {
		paths[i] = r.Path
	}
	items, err := q.Get(ctx, paths)
	if err != nil {
		return err
	}
	for i, r := range regs {
		it, ok := items[r.Path]
		if !ok || it.State != queue.Done {
			return fmt.Errorf("queue row of %s: %+v, want a done row", r.Path, it)
		}
		regs[i].Enqueued, regs[i].Finished = it.EnqueuedAt, it.FinishedAt
	}
	return nil
}
