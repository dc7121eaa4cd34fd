package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"nixpush/cache/httpcache/nginxtest"
	"nixpush/cache/s3cache/s3test"
	"nixpush/internal/freeport"
)

// server is a cache server the suite runs on 127.0.0.1 and can stop,
// freeze and start again on the same port and directory. nginxtest and
// s3test do this for tests, but need a testing.TB.
type server struct {
	name    string
	command func() *exec.Cmd // a fresh command line for each start
	ready   string           // URL that answers once it serves
	status  int              // status ready must return (0: any)
	logFile string
	p       *proc
}

// start runs the server and waits (bounded) until it answers.
func (s *server) start() error {
	cmd := s.command()
	p, err := start(s.name, s.logFile, cmd.Env, cmd.Path, cmd.Args[1:]...)
	if err != nil {
		return err
	}
	s.p = p
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := client.Get(s.ready); err == nil {
			resp.Body.Close()
			if s.status == 0 || resp.StatusCode == s.status {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited at start: %s", s.name, tail(p.output(), 1500))
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("%s did not answer within 20s: %s", s.name, tail(p.output(), 1500))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server: SIGTERM, then SIGKILL of its group after 5 s.
func (s *server) stop() {
	if s.p == nil || s.p.exited() {
		return
	}
	s.thaw()
	s.p.signal(syscall.SIGTERM)
	select {
	case <-s.p.done:
	case <-time.After(5 * time.Second):
	}
	s.p.kill()
	// nginx workers outliving their master would keep the port.
	_ = syscall.Kill(-s.p.cmd.Process.Pid, syscall.SIGKILL)
}

// freeze stops the server's processes (SIGSTOP to its group): the kernel
// still accepts connections and buffers bytes, nothing answers.
func (s *server) freeze() { _ = syscall.Kill(-s.p.cmd.Process.Pid, syscall.SIGSTOP) }

// thaw resumes a frozen server.
func (s *server) thaw() { _ = syscall.Kill(-s.p.cmd.Process.Pid, syscall.SIGCONT) }

// nginxCache is nginx serving CacheDir with WebDAV PUT, configured as
// nginxtest configures it.
type nginxCache struct {
	*server
	Addr     string // 127.0.0.1:PORT
	CacheDir string
}

func startNginx(dir string) (*nginxCache, error) {
	bin, err := nginxtest.FindBinary()
	if err != nil {
		return nil, err
	}
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	args, err := nginxtest.Setup(dir, port, "")
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	n := &nginxCache{Addr: addr, CacheDir: filepath.Join(dir, "cache"), server: &server{
		name:    "nginx",
		command: func() *exec.Cmd { return exec.Command(bin, args...) },
		ready:   "http://" + addr + "/",
		logFile: filepath.Join(dir, "nginx.out"),
	}}
	return n, n.start()
}

// s3Cache is versitygw (posix backend) with one bucket, a directory:
// BucketDir holds the objects as plain files.
type s3Cache struct {
	*server
	Addr                 string // 127.0.0.1:PORT
	Bucket, BucketDir    string
	AccessKey, SecretKey string
}

func startS3(dir string) (*s3Cache, error) {
	bin, err := s3test.FindBinary()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "s3")
	s := &s3Cache{Bucket: "faults", BucketDir: filepath.Join(root, "faults"),
		AccessKey: "AK" + randomHex(9), SecretKey: randomHex(20)}
	// With the posix backend a bucket is a directory of its root.
	if err := os.MkdirAll(s.BucketDir, 0o755); err != nil {
		return nil, fmt.Errorf("create bucket dir: %w", err)
	}
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.server = &server{
		name:    "versitygw",
		command: func() *exec.Cmd { return s3test.Command(bin, s.Addr, root, s.AccessKey, s.SecretKey) },
		ready:   "http://" + s.Addr + "/health",
		status:  http.StatusOK,
		logFile: filepath.Join(dir, "versitygw.out"),
	}
	return s, s.start()
}

// env is what a nixpush process needs to reach this server: its keys
// and nothing of the host's AWS configuration.
func (s *s3Cache) env(dir string) []string {
	none := filepath.Join(dir, "no-aws-config")
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1",
	}
}

// url is the cache URL through addr (the server's or a proxy's).
func (s *s3Cache) url(addr, query string) string {
	u := fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&region=us-east-1", s.Bucket, addr)
	if query != "" {
		u += "&" + query
	}
	return u
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
