package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nixpush/cache/httpcache/nginxtest"
	"nixpush/cache/s3cache/s3test"
	"nixpush/internal/freeport"
)

// cacheServer is a server the remote suite pushes to, started on
// 127.0.0.1 in its own process group so that its CPU (workers included)
// can be told apart from the tool's, and stopped with it.
type cacheServer struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	logs   func() string // what it printed or logged, for errors
}

// serverStartTimeout bounds the wait for a server to answer.
const serverStartTimeout = 20 * time.Second

// startServer runs cmd in a new process group and waits until ready
// (polled every 10 ms) says it answers.
func startServer(name string, cmd *exec.Cmd, logs func() string, ready func() bool) (*cacheServer, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &cacheServer{name: name, cmd: cmd, exited: make(chan struct{}), logs: logs}
	go func() { cmd.Wait(); close(s.exited) }() //nolint:errcheck // the exit is reported through exited
	deadline := time.Now().Add(serverStartTimeout)
	for !ready() {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited at start (%s):\n%s", name, cmd.ProcessState, tail(logs(), 2000))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s did not answer within %v:\n%s", name, serverStartTimeout, tail(logs(), 2000))
		}
	}
	return s, nil
}

// Stop ends the server (SIGTERM; SIGKILL to its process group if it
// lingers) and waits for it. Calling it again does nothing.
func (s *cacheServer) Stop() {
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	// nginx workers outliving a killed master would keep the port.
	if err := syscall.Kill(-pid, 0); err == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// CPU is the user+sys time of every live process in the server's
// process group (nginx's master and workers; versitygw's one process),
// from /proc/PID/stat. Servers keep their processes for their lifetime,
// so the difference of two readings is the CPU used in between.
func (s *cacheServer) CPU() (time.Duration, error) {
	select {
	case <-s.exited:
		return 0, fmt.Errorf("%s has exited:\n%s", s.name, tail(s.logs(), 2000))
	default:
	}
	pgid := strconv.Itoa(s.cmd.Process.Pid)
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

// nginxServer serves CacheDir at URL (no trailing slash) and stores PUT
// bodies there with WebDAV, configured as nginxtest and scripts/nginx.sh
// configure it (nginxtest.Config), with create_full_put_path on: every
// run pushes to a fresh directory, URL/run-N/.
type nginxServer struct {
	*cacheServer
	URL      string
	CacheDir string
}

// startNginx runs nginx in the foreground for a cache under dir (which
// must exist). nginxtest.Start would do, but it needs a testing.TB.
func startNginx(dir string) (*nginxServer, error) {
	bin, err := nginxtest.FindBinary()
	if err != nil {
		return nil, err
	}
	// A port free when picked may be taken before nginx binds it.
	var lastErr error
	for range 5 {
		port, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		args, err := nginxtest.Setup(dir, port, "")
		if err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		s, err := startServer("nginx", exec.Command(bin, args...), fileReader(nginxtest.ErrorLog(dir)), answers(url+"/", 0))
		if err == nil {
			return &nginxServer{cacheServer: s, URL: url, CacheDir: filepath.Join(dir, "cache")}, nil
		}
		if lastErr = err; !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

// versitygw is an S3 server with the posix backend: the objects of
// Bucket are plain files under Dir/Bucket, so its narinfos can be
// counted on disk.
type versitygw struct {
	*cacheServer
	Endpoint             string // 127.0.0.1:PORT, plain HTTP
	Dir, Bucket          string
	AccessKey, SecretKey string
}

// startVersitygw runs `versitygw --port 127.0.0.1:PORT --health /health
// --quiet posix DIR/s3` with fresh root keys, and creates the bucket as a
// directory of the backend (which is what CreateBucket does there).
// s3test.NewServer would do, but it needs a testing.TB.
func startVersitygw(dir, bucket string) (*versitygw, error) {
	bin, err := s3test.FindBinary()
	if err != nil {
		return nil, err
	}
	v := &versitygw{Dir: filepath.Join(dir, "s3"), Bucket: bucket, AccessKey: "AK" + randomHex(9), SecretKey: randomHex(20)}
	if err := os.MkdirAll(filepath.Join(v.Dir, bucket), 0o755); err != nil {
		return nil, fmt.Errorf("create bucket dir: %w", err)
	}
	logFile := filepath.Join(dir, "versitygw.log")
	var lastErr error
	for range 3 {
		port, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		v.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		out, err := os.Create(logFile)
		if err != nil {
			return nil, fmt.Errorf("create versitygw log: %w", err)
		}
		cmd := s3test.Command(bin, v.Endpoint, v.Dir, v.AccessKey, v.SecretKey)
		cmd.Stdout, cmd.Stderr = out, out
		s, err := startServer("versitygw", cmd, fileReader(logFile), answers("http://"+v.Endpoint+"/health", http.StatusOK))
		out.Close() // the child has its own descriptor
		if err == nil {
			v.cacheServer = s
			return v, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// answers returns a readiness check: a GET of url gets any response
// (status 0) or the given status.
func answers(url string, status int) func() bool {
	client := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return status == 0 || resp.StatusCode == status
	}
}

func fileReader(name string) func() string {
	return func() string {
		b, _ := os.ReadFile(name)
		return string(b)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
