package main

import (
	"fmt"
	"path/filepath"

	"nixpush/internal/servertest"
)

// The caches a scenario breaks are real servers that servertest runs on
// 127.0.0.1 and can stop, freeze and start again on the same port and
// directory; toxiproxy (the world's) sits in front of them.

// nginx starts nginx for this scenario, serving CacheDir with WebDAV
// PUT as the tests configure it; it is stopped when the scenario ends.
func (r *run) nginx() (*servertest.Nginx, error) {
	n := servertest.NewNginx(filepath.Join(r.dir, "nginx"), "")
	if err := n.Start(); err != nil {
		return nil, err
	}
	r.cleanup(n.Stop)
	return n, nil
}

// s3 starts versitygw (posix backend) for this scenario, with one bucket
// whose objects are the files of BucketDir; it is stopped when the
// scenario ends.
func (r *run) s3() (*servertest.Versitygw, error) {
	s := servertest.NewVersitygw(filepath.Join(r.dir, "versitygw"), "faults")
	if err := s.Start(); err != nil {
		return nil, err
	}
	r.cleanup(s.Stop)
	return s, nil
}

// s3Env is what a nixpush process needs to reach the server: its keys
// and nothing of the host's AWS configuration.
func s3Env(s *servertest.Versitygw, dir string) []string {
	return append(s.AWSEnv(dir), "AWS_REGION=us-east-1")
}

// s3URL is the cache URL of the bucket through addr (the server's or a
// proxy's).
func s3URL(s *servertest.Versitygw, addr, query string) string {
	u := fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&region=us-east-1", s.Bucket, addr)
	if query != "" {
		u += "&" + query
	}
	return u
}

// proxy puts a toxiproxy proxy in front of addr, healed when the
// scenario ends (toxiproxy outlives scenarios).
func (r *run) proxy(addr string) (*servertest.Proxy, error) {
	p, err := r.Toxi.Proxy(addr)
	if err == nil {
		r.cleanup(func() { _ = p.Heal(); _ = p.Disable() })
	}
	return p, err
}

// proxiedNginx starts nginx with a proxy in front of it: the cache's
// directory, its URL through the proxy, and the proxy to break.
func (r *run) proxiedNginx() (cacheDir, url string, px *servertest.Proxy, err error) {
	ng, err := r.nginx()
	if err != nil {
		return "", "", nil, err
	}
	if px, err = r.proxy(ng.Addr); err != nil {
		return "", "", nil, err
	}
	return ng.CacheDir, "http://" + px.Addr, px, nil
}
