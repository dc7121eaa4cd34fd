package httpcache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config holds what New needs besides the URL. The zero value is usable:
// no token, ~/.netrc when present, system CAs, DefaultTimeout.
type Config struct {
	// TokenFile holds a bearer token, sent as "Authorization: Bearer
	// TOKEN"; surrounding white space is trimmed. It wins over Token.
	TokenFile string
	// Token is a bearer token given directly (the command takes it from
	// the environment variable NIXPUSH_TOKEN, never from a flag).
	Token string
	// NetrcFile supplies basic auth (machine HOST login L password P)
	// when neither a token nor user info in the URL is given. Empty
	// means ~/.netrc, if it exists.
	NetrcFile string
	// CACert is a PEM file of CA certificates trusted in addition to the
	// system's.
	CACert string
	// Timeout bounds connecting, the TLS handshake, waiting for response
	// headers once a request is sent, and any single write that makes no
	// progress (a server that stops reading). It never bounds a whole
	// body: a large NAR may take as long as it takes. The header wait
	// starts when the last byte is handed to the kernel, so it must also
	// cover the server draining socket buffers and storing the object.
	// Zero means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is Config.Timeout when unset.
const DefaultTimeout = 60 * time.Second

// credentials is the Authorization header sent with every request and
// what to tell a user whose credentials the server refused.
type credentials struct {
	header  string   // "" when none
	source  string   // where they came from, for messages
	secrets []string // never to be shown
}

// credentials picks, in order: TokenFile, Token, the URL's user info,
// the netrc entry for the URL's host.
func (cfg Config) credentials(u *url.URL) (credentials, error) {
	switch {
	case cfg.TokenFile != "":
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return credentials{}, fmt.Errorf("read token file: %w", err)
		}
		return bearer(string(b), "the token in "+cfg.TokenFile+" (--token-file)")
	case cfg.Token != "":
		return bearer(cfg.Token, "the token in NIXPUSH_TOKEN")
	case u.User != nil:
		pass, _ := u.User.Password()
		return basic(u.User.Username(), pass, "the user and password in the cache URL"), nil
	}
	file, explicit := cfg.NetrcFile, cfg.NetrcFile != ""
	if !explicit {
		home, err := os.UserHomeDir()
		if err != nil {
			return credentials{}, nil
		}
		file = filepath.Join(home, ".netrc")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return credentials{}, nil
	}
	if err != nil {
		return credentials{}, fmt.Errorf("read netrc file: %w", err)
	}
	if login, pass, ok := netrcLookup(string(b), u.Hostname()); ok {
		return basic(login, pass, "the login for "+u.Hostname()+" in "+file), nil
	}
	return credentials{}, nil
}

func bearer(token, source string) (credentials, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return credentials{}, fmt.Errorf("%s is empty", source)
	}
	if strings.ContainsAny(token, "\r\n") {
		return credentials{}, fmt.Errorf("%s spans several lines; it must be one line", source)
	}
	return credentials{header: "Bearer " + token, source: source, secrets: []string{token}}, nil
}

func basic(user, pass, source string) credentials {
	enc := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	secrets := []string{enc}
	if pass != "" {
		secrets = append(secrets, pass)
	}
	return credentials{header: "Basic " + enc, source: source, secrets: secrets}
}

func (a credentials) apply(req *http.Request) {
	if a.header != "" {
		req.Header.Set("Authorization", a.header)
	}
}

// refused says what to fix when the server refuses a request for want of
// the right credentials.
func (a credentials) refused(put bool) string {
	if a.header == "" {
		return "no credentials were sent: give --token-file, NIXPUSH_TOKEN, user:password@ in the cache URL, or a netrc entry"
	}
	if put {
		return "check " + a.source + ", and that it may upload to this cache"
	}
	return "check " + a.source
}

// redact removes every secret from s.
func (a credentials) redact(s string) string {
	for _, secret := range a.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// stallTimeout is Timeout, or DefaultTimeout when unset.
func (cfg Config) stallTimeout() time.Duration {
	if cfg.Timeout <= 0 {
		return DefaultTimeout
	}
	return cfg.Timeout
}

// transport is one connection pool for all requests of a cache.
func (cfg Config) transport() (*http.Transport, error) {
	timeout := cfg.stallTimeout()
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate", cfg.CACert)
		}
		tlsConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: conn, timeout: timeout}, nil
		},
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true, // as Nix does; lost by default with a custom dialer
		// The uploader has up to 64 NARs, 64 narinfos and 64 + 64
		// existence checks in flight (uploader/limits.go): keep a
		// connection for each, or a slow link pays a new handshake
		// for most requests. Over HTTP/2 they share a few connections.
		MaxIdleConns:        IdleConns,
		MaxIdleConnsPerHost: IdleConns,
		IdleConnTimeout:     90 * time.Second,
		// Larger than the 4 KiB default: fewer syscalls and chunk headers
		// per streamed NAR, at 128 KiB per connection.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  64 << 10,
	}, nil
}

// IdleConns is how many idle connections to a cache are kept alive: as
// many as the uploader has requests in flight.
const IdleConns = 256

// stallConn fails a write that makes no progress for timeout: a server
// that stops reading a body would otherwise hang an upload forever, and
// TCP keep-alives do not notice a peer that is alive but not reading.
// Reads get no deadline: an idle pooled connection waits in a read.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
