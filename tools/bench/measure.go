package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is one timed run of one tool.
type Sample struct {
	Wall time.Duration
	// CPU is user+sys of the child and of every descendant it waited for
	// (wait4's rusage), so a shell pipeline counts all its stages.
	CPU time.Duration
	Sys time.Duration // the system part of CPU
	// MaxRSS is the peak resident set of the child or of its largest
	// waited-for descendant (not their sum), in bytes.
	MaxRSS int64
	// Output is the bytes the run produced: the sum of the cache's nar/
	// files, or the compressed stream of the machine-limit pipeline.
	Output int64
	// Others is how many cores the rest of the machine kept busy during
	// the run (including steal): the noise the run competed with.
	Others float64
}

// runTimeout bounds one timed run; the slowest expected is a few seconds.
const runTimeout = 30 * time.Minute

// measure runs a command to completion and returns its time, CPU and
// memory, and its stdout. It flushes dirty pages first (untimed), so writeback left by the
// previous run does not land in this one.
func measure(ctx context.Context, name string, args []string, env []string) (Sample, string, error) {
	s, out, _, err := measureRun(ctx, name, args, env, false)
	return s, out, err
}

// measureRun is measure that also returns the exit code. With
// exitIsResult a run that exits non-zero is a result, not an error: it
// fails only when the command cannot run or is killed.
func measureRun(ctx context.Context, name string, args []string, env []string, exitIsResult bool) (Sample, string, int, error) {
	syscall.Sync()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	busy0 := machineBusy()
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	busy1 := machineBusy()
	var exitErr *exec.ExitError
	if err != nil && (!exitIsResult || !errors.As(err, &exitErr) || exitErr.ExitCode() < 0) {
		return Sample{}, "", 0, fmt.Errorf("%s: %w\n%s", commandLine(name, args), err, tail(errb.String(), 2000))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return Sample{}, "", 0, fmt.Errorf("%s: no rusage", name)
	}
	s := Sample{
		Wall:   wall,
		CPU:    time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)),
		Sys:    time.Duration(syscall.TimevalToNsec(ru.Stime)),
		MaxRSS: ru.Maxrss * 1024, // KiB on Linux
	}
	if busy0 >= 0 && busy1 >= 0 {
		others := busy1 - busy0 - s.CPU
		s.Others = max(0, others.Seconds()/wall.Seconds())
	}
	return s, out.String(), cmd.ProcessState.ExitCode(), nil
}

// clockTick is USER_HZ, the unit of /proc/stat (100 on every Linux build
// we run on).
const clockTick = 100

// machineBusy returns the CPU time all cores have spent busy since boot
// (user, nice, system, irq, softirq, steal), or -1 if /proc/stat is
// unreadable. Its resolution is 10 ms per core.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system . . irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return -1
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// cacheOutput checks that a binary cache dir holds one narinfo per
// expected path (a tool that skipped work would look fast) and returns
// the total size of its nar/ files.
func cacheOutput(dir string, wantPaths int) (int64, error) {
	narinfos, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil {
		return 0, fmt.Errorf("list narinfos: %w", err)
	}
	if len(narinfos) != wantPaths {
		return 0, fmt.Errorf("cache %s has %d narinfos, want %d", dir, len(narinfos), wantPaths)
	}
	var size int64
	err = filepath.WalkDir(filepath.Join(dir, "nar"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of nar/: %w", err)
	}
	return size, nil
}

// stat summarises one figure over the samples of a tool.
type stat struct{ Median, Min, Max float64 }

func summarise(samples []Sample, field func(Sample) float64) stat {
	if len(samples) == 0 {
		return stat{}
	}
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = field(s)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{Median: med, Min: v[0], Max: v[len(v)-1]}
}

func wallSeconds(s Sample) float64 { return s.Wall.Seconds() }
func cpuSeconds(s Sample) float64  { return s.CPU.Seconds() }
func sysSeconds(s Sample) float64  { return s.Sys.Seconds() }
func rssBytes(s Sample) float64    { return float64(s.MaxRSS) }
func outputBytes(s Sample) float64 { return float64(s.Output) }
func othersCores(s Sample) float64 { return s.Others }
