package main

import (
	"path/filepath"

	"nixpush/internal/toxitest"
)

// nginx starts nginx for this scenario, stopped when it ends.
func (r *run) nginx() (*nginxCache, error) {
	n, err := startNginx(filepath.Join(r.dir, "nginx"))
	if n != nil && n.server.p != nil {
		r.cleanup(n.stop)
	}
	return n, err
}

// s3 starts versitygw for this scenario, stopped when it ends.
func (r *run) s3() (*s3Cache, error) {
	s, err := startS3(filepath.Join(r.dir, "versitygw"))
	if s != nil && s.server.p != nil {
		r.cleanup(s.stop)
	}
	return s, err
}

// proxy puts a toxiproxy proxy in front of addr, healed when the
// scenario ends (toxiproxy outlives scenarios).
func (r *run) proxy(addr string) (*toxitest.Proxy, error) {
	p, err := r.Toxi.Proxy(addr)
	if err == nil {
		r.cleanup(func() { _ = p.Heal(); _ = p.Disable() })
	}
	return p, err
}

// proxiedNginx starts nginx with a proxy in front of it: the cache's
// directory, its URL through the proxy, and the proxy to break.
func (r *run) proxiedNginx() (cacheDir, url string, px *toxitest.Proxy, err error) {
	ng, err := r.nginx()
	if err != nil {
		return "", "", nil, err
	}
	if px, err = r.proxy(ng.Addr); err != nil {
		return "", "", nil, err
	}
	return ng.CacheDir, "http://" + px.Addr, px, nil
}
