package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"nixpush/internal/servertest"
)

// The remote, wan and verify suites push to servers that servertest
// starts on 127.0.0.1, each in its own process group so that its CPU
// (nginx's workers included) can be told apart from the tool's.

// startNginx runs nginx for a cache under dir, configured as the tests
// and scripts/nginx.sh configure it (servertest.NginxConfig), with
// create_full_put_path on: every run pushes to a fresh directory,
// URL/run-N/.
func startNginx(dir string) (*servertest.Nginx, error) {
	n := servertest.NewNginx(dir, "")
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// startVersitygw runs versitygw (posix backend) under dir with fresh root
// keys and one empty bucket, whose objects are plain files in
// BucketDir, so its narinfos can be counted on disk.
func startVersitygw(dir, bucket string, env ...string) (*servertest.Versitygw, error) {
	v := servertest.NewVersitygw(dir, bucket)
	v.Env = env
	if err := v.Start(); err != nil {
		return nil, err
	}
	return v, nil
}

// groupCPU is the user+sys time of every live process in the server's
// process group (nginx's master and workers; versitygw's one process),
// from /proc/PID/stat. Servers keep their processes for their lifetime,
// so the difference of two readings is the CPU used in between.
func groupCPU(s *servertest.Server) (time.Duration, error) {
	pid := s.Pid()
	if pid == 0 || !s.Running() {
		return 0, fmt.Errorf("%s has exited:\n%s", s.Name, tail(s.Log(), 2000))
	}
	pgid := strconv.Itoa(pid)
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	var ticks int64
	for _, file := range stats {
		b, err := os.ReadFile(file)
		if err != nil {
			continue // the process exited between the glob and the read
		}
		// Fields after the command name's closing parenthesis start at
		// field 3 (state): pgrp is field 5, utime 14, stime 15.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b)[i+1:])
		if i < 0 || len(f) < 13 || f[2] != pgid {
			continue
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("read %s: bad utime/stime", file)
		}
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}
