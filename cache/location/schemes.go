package location

import (
	"context"
	"errors"
	"net/url"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/cache/httpcache"
	"nixpush/cache/s3cache"
)

// registry maps every supported scheme to its backend. Adding a backend
// is adding an entry here.
var registry = []*scheme{
	{
		names: []string{"file"},
		check: func(u *url.URL) error {
			if u.Host != "" && u.Host != "localhost" {
				return errors.New("cache URL: a file URL needs three slashes (file:///dir)")
			}
			if u.Path == "" {
				return errors.New("cache URL: a file URL needs a directory (file:///dir)")
			}
			return nil
		},
		open: func(_ context.Context, u *url.URL, o Options) (cache.Cache, error) {
			if o.Existing {
				return filecache.Open(u.Path)
			}
			return filecache.New(u.Path)
		},
	},
	{
		names: []string{"http", "https"},
		check: func(u *url.URL) error {
			if u.Host == "" {
				return errors.New("cache URL: an http(s) URL needs a host")
			}
			return nil
		},
		open: func(_ context.Context, u *url.URL, o Options) (cache.Cache, error) {
			return httpcache.New(u, httpcache.Config{
				TokenFile: o.TokenFile, Token: o.Token, NetrcFile: o.NetrcFile,
				CACert: o.CACert, Timeout: o.Timeout,
			})
		},
	},
	{
		names:  []string{"s3"},
		params: s3cache.URLParams,
		check: func(u *url.URL) error {
			if u.Host == "" {
				return errors.New("cache URL: s3:// needs a bucket name (s3://bucket)")
			}
			return nil
		},
		// One bucket name on two servers is two caches.
		identity: func(u *url.URL) string {
			if ep := u.Query().Get("endpoint"); ep != "" {
				return "?endpoint=" + url.QueryEscape(ep)
			}
			return ""
		},
		open: func(ctx context.Context, u *url.URL, o Options) (cache.Cache, error) {
			return s3cache.New(ctx, u, s3cache.Config{PartSize: o.PartSize, Concurrency: o.Concurrency, Timeout: o.Timeout})
		},
	},
}

func lookup(name string) *scheme {
	for _, s := range registry {
		for _, n := range s.names {
			if n == name {
				return s
			}
		}
	}
	return nil
}
