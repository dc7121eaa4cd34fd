package servertest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Nginx is a binary cache served by a real nginx, as an operator would set
// one up: CacheDir on 127.0.0.1, storing PUT bodies and deleting with
// WebDAV, listing with PROPFIND (Debian's dav-ext module).
// scripts/nginx.sh runs the same configuration by hand.
type Nginx struct {
	*Server
	CacheDir string // what it serves and where uploads land: Dir/cache
	auth     string
}

// NewNginx describes an nginx keeping everything under dir (config, logs,
// temp files, the cache); Start runs it. auth, when not empty, is the one
// Authorization header value accepted (Bearer, Basic): every other
// request, HEAD and GET included, gets 401.
func NewNginx(dir, auth string) *Nginx {
	n := &Nginx{CacheDir: filepath.Join(dir, "cache"), auth: auth}
	n.Server = &Server{Name: "nginx", Dir: dir, launch: n.launch,
		// Any answer will do: with autoindex off, / is 403 (or 401).
		readyPath: "/",
		logs:      []string{filepath.Join(dir, "access.log"), filepath.Join(dir, "error.log")}}
	return n
}

// StartNginx runs an nginx cache for the test (MustStart), in a temp dir.
func StartNginx(t testing.TB, auth string) *Nginx {
	t.Helper()
	return MustStart(t, NewNginx(t.TempDir(), auth))
}

// Bearer is the Authorization value of a bearer token, for NewNginx.
func Bearer(token string) string { return "Bearer " + token }

// Basic is the Authorization value of HTTP basic auth, for NewNginx.
func Basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// URL is the cache's base URL, http://127.0.0.1:PORT, no trailing slash.
func (n *Nginx) URL() string { return "http://" + n.Addr }

// UploadTempDir is where nginx keeps request bodies while they arrive:
// after a failed or finished upload it is empty.
func (n *Nginx) UploadTempDir() string { return filepath.Join(n.Dir, "tmp", "body") }

// DavExtModule is where Debian's libnginx-mod-http-dav-ext puts the module
// that adds PROPFIND (nginx's own dav module has no listing). nginx is
// started with its own prefix, so the path must be absolute.
const DavExtModule = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"

// launch writes nginx.conf for port and returns the command line that
// runs nginx in the foreground, as a child the Server can stop.
func (n *Nginx) launch(port int) (string, []string, []string, error) {
	bin, err := binary("nginx", "run scripts/deps.sh (or apt-get install nginx)")
	if err != nil {
		return "", nil, nil, err
	}
	// Checked here so that a missing module is named, rather than nginx
	// failing to start with a dlopen error.
	if _, err := os.Stat(DavExtModule); err != nil {
		return "", nil, nil, errors.New("nginx's WebDAV PROPFIND module is not installed: run scripts/deps.sh (or apt-get install libnginx-mod-http-dav-ext)")
	}
	if strings.ContainsAny(n.auth, "\"\\$;{}'\r\n") {
		return "", nil, nil, errors.New("nginx: credentials with quotes, $, ;, braces or newlines cannot go into nginx.conf")
	}
	for _, d := range []string{"cache", "tmp"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o755); err != nil {
			return "", nil, nil, fmt.Errorf("create nginx dir: %w", err)
		}
	}
	conf := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(NginxConfig(n.Dir, port, n.auth)), 0o644); err != nil {
		return "", nil, nil, fmt.Errorf("write nginx.conf: %w", err)
	}
	return bin, []string{"-p", n.Dir, "-c", conf, "-e", filepath.Join(n.Dir, "error.log")}, nil, nil
}

// NginxConfig is the nginx.conf of a cache under root (root/cache)
// listening on 127.0.0.1:port, in the foreground; auth, when not empty,
// is the one Authorization header value accepted.
func NginxConfig(root string, port int, auth string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# nixpush test cache: %s/cache on 127.0.0.1:%d; PUT stores files,", root, port)
	p("# DELETE removes them, PROPFIND lists them (WebDAV).")
	p("# Everything nginx writes stays under %s.", root)
	p("load_module %s;", DavExtModule)
	p("daemon off;")
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
