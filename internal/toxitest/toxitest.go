// Package toxitest runs Shopify's toxiproxy, a real TCP proxy, on
// 127.0.0.1 in front of a server, to give benchmarks and fault-injection
// tests a network that is slow (latency, bandwidth) or broken (stalls,
// resets, connections cut after N bytes). It drives the server through
// toxiproxy's own Go client.
//
// What toxiproxy does and does not model, which matters for reading any
// figure taken through it:
//   - latency delays every chunk of data by the set time in one direction;
//     a request and its response cross both, so they take the round trip.
//     Connecting does not: the client's handshake is with the proxy on
//     loopback, so opening a connection costs no round trip here, where a
//     real network charges one (two with TLS).
//   - bandwidth caps each connection on its own, not the link: k
//     connections in parallel get k times the rate.
//
// The binary is toxiproxy-server, installed by scripts/toxiproxy.sh
// (which make deps runs) into GOBIN or GOPATH/bin.
package toxitest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"nixpush/internal/freeport"
	"nixpush/internal/gobin"
)

// binaryName is what scripts/toxiproxy.sh installs cmd/server as.
const binaryName = "toxiproxy-server"

// errNotInstalled marks FindBinary's error, so Require can tell a missing
// binary (skip) from one that fails to start (fail).
var errNotInstalled = errors.New("toxiproxy is not installed")

// FindBinary returns toxiproxy-server from PATH, GOBIN or GOPATH/bin.
func FindBinary() (string, error) {
	p, searched := gobin.Find(binaryName)
	if p == "" {
		return "", fmt.Errorf("%w: %s is not on PATH nor in %s: run scripts/toxiproxy.sh (make deps runs it)",
			errNotInstalled, binaryName, strings.Join(searched, ", "))
	}
	return p, nil
}

// Server is a running toxiproxy-server with its API on 127.0.0.1.
type Server struct {
	API    string // host:port of the HTTP API
	client *toxiproxy.Client
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
	seq    int
}

// startTimeout bounds the wait for the API to answer.
const startTimeout = 20 * time.Second

// Start runs toxiproxy-server with its API on a free port of 127.0.0.1,
// in its own process group (so a bench can tell its CPU from the tool's),
// and waits until the API answers. Stop ends it.
func Start() (*Server, error) {
	bin, err := FindBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a port free when picked may be taken before the server binds it
		port, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		s, err := start(bin, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin string, port int) (*Server, error) {
	s := &Server{API: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{}), log: &lockedBuffer{}}
	s.cmd = exec.Command(bin, "-host", "127.0.0.1", "-port", fmt.Sprint(port))
	// Its default level logs every connection; a bench opens thousands.
	s.cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start toxiproxy-server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		if resp, err := client.Get("http://" + s.API + "/version"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("toxiproxy-server exited at start (%s): %s", s.cmd.ProcessState, s.log.tail(2000))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("toxiproxy-server did not answer within %v: %s", startTimeout, s.log.tail(2000))
		}
	}
	s.client = toxiproxy.NewClient(s.API)
	return s, nil
}

// Pid is the server's process id (also its process group's).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop ends the server and waits for it; calling it again does nothing.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Proxy listens on a free port of 127.0.0.1 and forwards every connection
// to upstream (host:port), with no toxic until one is set.
func (s *Server) Proxy(upstream string) (*Proxy, error) {
	s.seq++
	name := fmt.Sprintf("proxy-%d", s.seq)
	p, err := s.client.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		return nil, fmt.Errorf("create proxy to %s: %w", upstream, err)
	}
	return &Proxy{Addr: p.Listen, p: p, toxics: map[string]bool{}}, nil
}

// Start is Start for a test: it fails the test when the server cannot
// start and stops it when the test ends. Call Require first to skip where
// toxiproxy is not installed.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Require skips the test when toxiproxy-server is not installed (it is
// not an apt package: scripts/toxiproxy.sh builds it). Anything else
// wrong with it fails the test later, in StartT.
func Require(t testing.TB) {
	t.Helper()
	if _, err := FindBinary(); errors.Is(err, errNotInstalled) {
		t.Skipf("skipped: %v", err)
	}
}

// lockedBuffer keeps what the server prints, for errors.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 1<<20 { // a runaway log must not grow without bound
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(string(l.b))
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
