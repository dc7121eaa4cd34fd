package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procStats is what /proc tells about a running process at one moment:
// the figures the idle and daemon suites compare between two moments.
type procStats struct {
	At  time.Time
	CPU time.Duration // utime+stime of every thread, from /proc/PID/stat
	RSS int64         // VmRSS, bytes
	HWM int64         // VmHWM, the peak RSS so far, bytes
	// Switches is voluntary+involuntary context switches summed over
	// the threads (/proc/PID/task/*/status): how often it woke up.
	Switches int64
	Threads  int
}

// readProcStats reads the figures of a live process.
func readProcStats(pid int) (procStats, error) {
	s := procStats{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read process stats: %w", err)
	}
	// The command name (field 2) may hold spaces; fields after its
	// closing parenthesis start at field 3 (state).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if i < 0 || len(f) < 13 {
		return s, fmt.Errorf("read process stats: unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("read process stats: bad utime/stime in /proc/%d/stat", pid)
	}
	s.CPU = time.Duration(utime+stime) * time.Second / clockTick
	status, err := readStatusFields(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.RSS, s.HWM = status["VmRSS"]*1024, status["VmHWM"]*1024
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return s, fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		ts, err := readStatusFields(t)
		if err != nil {
			continue // the thread exited between the glob and the read
		}
		s.Switches += ts["voluntary_ctxt_switches"] + ts["nonvoluntary_ctxt_switches"]
		s.Threads++
	}
	return s, nil
}

// readStatusFields parses the numeric "Name: value [kB]" lines of a
// /proc status file.
func readStatusFields(file string) (map[string]int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read process status: %w", err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, sc.Err()
}

// loadAverage is /proc/loadavg's first three fields, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
