// Package nginxtest runs a real nginx for tests: a binary cache served
// from a temp dir on 127.0.0.1, storing PUT bodies and deleting with
// WebDAV, and listing with PROPFIND (Debian's dav-ext module), as an
// operator would set one up. Like internal/nixtest it fails, never skips,
// when the server is missing, so a machine without nginx cannot make the
// suite pass silently. scripts/nginx.sh runs the same configuration by hand.
package nginxtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nixpush/internal/freeport"
)

// Start runs nginx for the test and returns the cache's base URL
// (http://127.0.0.1:PORT, no trailing slash) and the directory it serves.
// Uploads land in cacheDir; nginx's temp files go to a sibling directory,
// TempDir(cacheDir). nginx stops when the test ends.
func Start(t testing.TB) (baseURL, cacheDir string) {
	t.Helper()
	return start(t, "")
}

// StartWithToken is Start with every request (HEAD, GET and PUT) refused
// with 401 unless it carries "Authorization: Bearer TOKEN".
func StartWithToken(t testing.TB, token string) (baseURL, cacheDir string) {
	t.Helper()
	return start(t, "Bearer "+token)
}

// StartWithBasicAuth is Start with every request refused with 401 unless
// it carries HTTP basic auth for user and password.
func StartWithBasicAuth(t testing.TB, user, password string) (baseURL, cacheDir string) {
	t.Helper()
	return start(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

// TempDir is where nginx keeps request bodies while they arrive: after a
// failed or finished upload it is empty.
func TempDir(cacheDir string) string {
	return filepath.Join(filepath.Dir(cacheDir), "tmp", "body")
}

// DavExtModule is where Debian's libnginx-mod-http-dav-ext puts the module
// that adds PROPFIND (nginx's own dav module has no listing). nginx is
// started with its own prefix, so the path must be absolute.
const DavExtModule = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"

// Binary returns the nginx executable, failing the test when there is
// none. Debian installs it in /usr/sbin, which a non-root PATH may lack.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := FindBinary()
	if err != nil {
		t.Fatal("nginx is required but not installed: run scripts/deps.sh (or apt-get install nginx)")
	}
	return p
}

// FindBinary is Binary for callers without a testing.TB (the benchmarks
// and the fault suite).
func FindBinary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed: run scripts/deps.sh (or apt-get install nginx)")
}

// needDavExt fails the test when the PROPFIND module is missing, saying
// how to install it, rather than let nginx fail to start with a dlopen error.
func needDavExt(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(DavExtModule); err != nil {
		t.Fatal("nginx's WebDAV PROPFIND module is required but not installed: run scripts/deps.sh (or apt-get install libnginx-mod-http-dav-ext)")
	}
}

// Config is the nginx.conf for a cache under root listening on
// 127.0.0.1:port; auth, when not empty, is the one Authorization header
// value accepted. daemon says whether nginx detaches (scripts) or stays
// in the foreground as a child of the test.
func Config(root string, port int, auth string, daemon bool) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# nixpush test cache: %s/cache on 127.0.0.1:%d; PUT stores files,", root, port)
	p("# DELETE removes them, PROPFIND lists them (WebDAV).")
	p("# Everything nginx writes stays under %s.", root)
	p("load_module %s;", DavExtModule)
	p("daemon %s;", map[bool]string{true: "on", false: "off"}[daemon])
	p("worker_processes 2;")
	if os.Geteuid() == 0 {
		p("user root; # workers must write the test's private (0700) dirs")
	}
	p("pid %s/nginx.pid;", root)
	p("error_log %s/error.log info;", root)
	p("events { worker_connections 512; }")
	p("http {")
	p("    access_log %s/access.log;", root)
	p("    client_body_temp_path %s/tmp/body;", root)
	for _, m := range []string{"proxy", "fastcgi", "uwsgi", "scgi"} {
		p("    %s_temp_path %s/tmp/%s;", m, root, m)
	}
	p("    default_type application/octet-stream;")
	p("    types { text/x-nix-narinfo narinfo; }")
	p("    server {")
	p("        listen 127.0.0.1:%d;", port)
	p("        root %s/cache;", root)
	p("        autoindex off;")
	p("        client_max_body_size 0;")
	if auth != "" {
		p("        if ($http_authorization != %q) { return 401; }", auth)
	}
	p("        location / {")
	p("            dav_methods PUT DELETE;")
	p("            dav_ext_methods PROPFIND OPTIONS;")
	p("            create_full_put_path on;")
	p("            dav_access user:rw group:r all:r;")
	p("        }")
	p("    }")
	p("}")
	return b.String()
}

// Setup prepares root for an nginx serving root/cache on 127.0.0.1:port
// (the cache and tmp directories, nginx.conf) and returns the arguments
// that run it in the foreground, logging to ErrorLog(root). Without a
// testing.TB, for the benchmarks and the fault suite too.
func Setup(root string, port int, auth string) ([]string, error) {
	for _, d := range []string{"cache", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("create nginx dir: %w", err)
		}
	}
	conf := filepath.Join(root, "nginx.conf")
	if err := os.WriteFile(conf, []byte(Config(root, port, auth, false)), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx.conf: %w", err)
	}
	return []string{"-p", root, "-c", conf, "-e", ErrorLog(root)}, nil
}

// ErrorLog is the error log of the nginx Setup prepares in root.
func ErrorLog(root string) string { return filepath.Join(root, "error.log") }

func start(t testing.TB, auth string) (string, string) {
	t.Helper()
	bin := Binary(t)
	needDavExt(t)
	if strings.ContainsAny(auth, "\"\\$;{}'\r\n") {
		t.Fatalf("nginxtest: credentials with quotes, $, ;, braces or newlines cannot go into nginx.conf")
	}
	root := t.TempDir()
	// The port is free when picked but may be taken before nginx binds it:
	// then try another.
	var lastErr error
	for range 5 {
		port := freePort(t)
		url, _, err := run(t, bin, root, port, auth)
		if err == nil {
			return url, filepath.Join(root, "cache")
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("start nginx: %v", lastErr)
	return "", ""
}

func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// run starts nginx in the foreground and waits until it answers.
func run(t testing.TB, bin, root string, port int, auth string) (string, func(), error) {
	args, err := Setup(root, port, auth)
	if err != nil {
		return "", nil, err
	}
	errorLog := ErrorLog(root)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers go with it
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logs := func() string {
		b, _ := os.ReadFile(errorLog)
		return strings.TrimSpace(out.String() + "\n" + string(b))
	}

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return "", nil, fmt.Errorf("nginx exited at start (%v):\n%s", err, logs())
		case <-tick.C:
		}
		// Any answer will do: with autoindex off, / is 403 (or 401).
		if resp, err := client.Get(url + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop(cmd, exited)
			return "", nil, fmt.Errorf("nginx did not answer on %s within 15s:\n%s", url, logs())
		}
	}
	var once sync.Once
	stopNow := func() { once.Do(func() { stop(cmd, exited) }) }
	t.Cleanup(func() {
		stopNow()
		if t.Failed() {
			access, _ := os.ReadFile(filepath.Join(root, "access.log"))
			t.Logf("nginx error log:\n%s\nnginx access log:\n%s", logs(), access)
		}
	})
	return url, stopNow, nil
}

// stop shuts nginx down fast (SIGTERM: the master stops its workers),
// and kills its process group if it lingers.
func stop(cmd *exec.Cmd, exited chan error) {
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// Workers outliving a killed master would keep the port.
	if err := syscall.Kill(-pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Server is an nginx a test can stop and start again, on the same port
// and directory: a cache server that goes away mid-push and comes back.
type Server struct {
	URL, CacheDir string
	t             testing.TB
	bin, root     string
	port          int
	stop          func()
}

// StartServer starts an nginx like Start that the test controls.
func StartServer(t testing.TB) *Server {
	t.Helper()
	needDavExt(t)
	s := &Server{t: t, bin: Binary(t), root: t.TempDir(), port: freePort(t)}
	for _, d := range []string{"cache", "tmp"} {
		if err := os.Mkdir(filepath.Join(s.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.CacheDir = filepath.Join(s.root, "cache")
	s.Start()
	return s
}

// Start (re)starts the server.
func (s *Server) Start() {
	s.t.Helper()
	url, stop, err := run(s.t, s.bin, s.root, s.port, "")
	if err != nil {
		s.t.Fatalf("start nginx: %v", err)
	}
	s.URL, s.stop = url, stop
}

// Stop stops the server; connections to it are refused until Start.
func (s *Server) Stop() { s.stop() }
