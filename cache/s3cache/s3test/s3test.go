// Package s3test runs a real S3 server for tests: versitygw with its posix
// backend, on 127.0.0.1, with a bucket that is a plain directory. Objects
// are stored as files (metadata in xattrs), so the bucket directory is also
// a file:// binary cache that Nix can read.
//
// versitygw is installed by scripts/deps.sh. A test that needs it fails,
// never skips, when it is missing.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"nixpush/internal/freeport"
	"nixpush/internal/gobin"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // host:port, for ?endpoint= with scheme=http
	Bucket    string // created empty by NewServer
	Dir       string // posix backend root: Bucket's objects are files under Dir/Bucket
	AccessKey string
	SecretKey string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string        // the server's stdout and stderr
}

// Start runs a server with one empty bucket and points the AWS credential
// chain of this test at it (t.Setenv). It returns the endpoint
// (127.0.0.1:PORT, plain HTTP), the bucket and the backend directory.
func Start(t testing.TB) (endpoint, bucket, dir string) {
	s := NewServer(t)
	return s.Endpoint, s.Bucket, s.Dir
}

// startTimeout bounds the wait for the server to answer.
const startTimeout = 20 * time.Second

// NewServer is Start returning the Server, which can be stopped early.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := filepath.Join(t.TempDir(), "s3")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Bucket: "nixpush-test", Dir: dir, AccessKey: "AK" + randHex(t, 9), SecretKey: randHex(t, 20)}
	setEnv(t, s)
	// A free port can be taken between picking and binding: try a few.
	var err error
	for range 3 {
		if err = s.start(t, bin); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := s.createBucket(t.Context()); err != nil {
		t.Fatalf("create bucket %s on versitygw: %v", s.Bucket, err)
	}
	return s
}

// Binary finds versitygw on PATH or in the Go bin directory.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := FindBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FindBinary is Binary for callers without a testing.TB (the benchmarks).
func FindBinary() (string, error) {
	p, searched := gobin.Find("versitygw")
	if p == "" {
		return "", fmt.Errorf("versitygw (the S3 server for tests) is not on PATH nor in %s: run scripts/deps.sh",
			strings.Join(searched, ", "))
	}
	return p, nil
}

// Command is the versitygw command line serving dir (posix backend) on
// endpoint with the given root keys. The keys go through the environment,
// not argv, where ps would show them.
func Command(bin, endpoint, dir, accessKey, secretKey string) *exec.Cmd {
	cmd := exec.Command(bin, "--port", endpoint, "--health", "/health", "--quiet", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
	return cmd
}

// setEnv points the AWS SDK's default chain at the server's credentials
// only: no profile, config file or instance metadata of the host.
func setEnv(t testing.TB, s *Server) {
	none := filepath.Join(t.TempDir(), "no-aws-config")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           s.AccessKey,
		"AWS_SECRET_ACCESS_KEY":       s.SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_PROFILE":         "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

// start launches the server on a fresh port and waits until it answers.
func (s *Server) start(t testing.TB, bin string) error {
	port, err := freeport.Pick()
	if err != nil {
		return err
	}
	s.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	logFile, err := os.CreateTemp(t.TempDir(), "versitygw-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.log = logFile.Name()
	s.cmd = Command(bin, s.Endpoint, s.Dir, s.AccessKey, s.SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited: %s\n%s", s.cmd.ProcessState, s.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("versitygw on %s not answering after %v (last error %v)\n%s", s.Endpoint, startTimeout, err, s.Log())
		}
	}
}

// Stop ends the server (SIGTERM, then SIGKILL) and waits for it. Calling
// it again does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Freeze stops the server process (SIGSTOP) without closing its socket:
// the kernel still accepts connections and buffers bytes, but nothing
// answers, as with a hung or swapped-out server. The test's cleanup
// thaws it (SIGCONT), so Stop can end it.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Errorf("freeze versitygw: %v", err)
		return
	}
	t.Cleanup(s.Thaw)
}

// Thaw resumes a frozen server (SIGCONT); it does nothing to a running
// or ended one.
func (s *Server) Thaw() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Log returns what the server printed.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// URL is the cache URL of the bucket, with an optional key prefix.
func (s *Server) URL(prefix string) *url.URL {
	u := &url.URL{Scheme: "s3", Host: s.Bucket, RawQuery: url.Values{"endpoint": {s.Endpoint}, "scheme": {"http"}}.Encode()}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	return u
}

// Client is a plain S3 client for the server, with its root credentials,
// for a test to look behind a cache's back.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// CreateBucket makes another empty bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

func (s *Server) createBucket(ctx context.Context) error {
	err := s.CreateBucket(ctx, s.Bucket)
	if err == nil {
		if fi, serr := os.Stat(filepath.Join(s.Dir, s.Bucket)); serr != nil || !fi.IsDir() {
			err = errors.Join(errors.New("bucket is not a directory of the posix backend"), serr)
		}
	}
	return err
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(b))
}
