// Package s3cache is the s3:// cache backend: a binary cache in an S3
// bucket (AWS, or any S3-compatible server: MinIO, Garage, versitygw...),
// with the object keys and content types of Nix's own S3 store, so Nix can
// substitute from the bucket directly.
//
// URLs are Nix's: s3://bucket[/prefix]?region=R&endpoint=HOST[:PORT]&scheme=http|https&profile=P.
// Credentials come from the standard AWS chain (environment, shared
// config and credentials files, instance roles), never from the URL.
package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"nixpush/cache"
	"nixpush/retry"
)

var _ cache.Cache = (*Cache)(nil)

// Part sizes: S3 refuses parts (other than the last) under 5 MiB. The
// defaults buffer 32 MiB per NAR in flight (8 MiB × 4), which keeps a
// large push under 100 MiB of memory; at 10,000 parts they allow NARs up
// to 80 GiB, and a body with a size hint gets larger parts (partPlan).
const (
	DefaultPartSize    = 8 << 20
	MinPartSize        = 5 << 20
	maxPartSize        = 5 << 30
	DefaultConcurrency = 4
	// DefaultRegion is used when neither the URL nor the AWS config names one.
	DefaultRegion = "us-east-1"
)

// DefaultTimeout is Config.Timeout when unset: the same as the http(s)
// backend's, so one setting (--http-timeout) serves both.
const DefaultTimeout = 60 * time.Second

// idleConns is how many idle connections to the S3 endpoint are kept
// alive: as many as the uploader has requests in flight.
const idleConns = 256

// Config tunes uploads.
type Config struct {
	// PartSize is the size of each part of a multipart upload, and the
	// threshold below which an object goes up in a single PUT. Default
	// 8 MiB, minimum 5 MiB. A body whose size hint needs more than
	// S3's 10,000 parts of this size gets larger parts.
	PartSize int64
	// Concurrency is the number of parts of one object in flight at once.
	// One Put holds at most PartSize × Concurrency bytes of memory, or
	// one part when a huge body's parts are larger than that (see
	// partPlan). Default 4.
	Concurrency int
	// Timeout fails any request that makes no progress for this long:
	// no connection, no byte of a body sent or received, no response.
	// It never bounds a whole transfer: a large part may take as long as
	// it takes while it moves. The failure is transient and wraps
	// ErrStalled. It also bounds the clean-up of a failed multipart
	// upload (see Put). Zero means DefaultTimeout.
	Timeout time.Duration
}

// Cache is a binary cache in an S3 bucket.
type Cache struct {
	client   *s3.Client
	bucket   string
	prefix   string // without leading or trailing slash; "" for the bucket root
	endpoint string // custom endpoint URL, "" for AWS
	cfg      Config

	parts sync.Pool // *[]byte of cfg.PartSize
	heads sync.Pool // *[]byte of headSize

	leftovers leftovers // failed multipart uploads whose abort failed

	limiter  *cache.Limiter // the bucket's, shared by every Cache of it in the process
	requests *cache.RequestCounter
	creates  createSupport // whether the server honours If-None-Match
}

// URLParams are the query parameters of an s3:// URL that New reads.
// Others (compression, secret-key...) are left to the caller.
var URLParams = []string{"region", "endpoint", "scheme", "profile"}

// New opens the bucket named by an s3:// URL and checks that it exists.
// A malformed URL, a missing bucket or refused credentials are permanent
// errors; an unreachable server is a transient one.
func New(ctx context.Context, u *url.URL, cfg Config) (*Cache, error) {
	c, err := open(ctx, u, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.checkBucket(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// open builds the client without talking to the server.
func open(ctx context.Context, u *url.URL, cfg Config) (*Cache, error) {
	if u.Scheme != "s3" {
		return nil, retry.Permanent(fmt.Errorf("cache URL scheme %q is not s3", u.Scheme))
	}
	if u.Host == "" {
		return nil, retry.Permanent(errors.New("cache URL s3:// needs a bucket name (s3://bucket)"))
	}
	if u.User != nil {
		return nil, retry.Permanent(errors.New("cache URL s3://: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ?profile="))
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > maxPartSize {
		return nil, retry.Permanent(fmt.Errorf("s3 part size %d is outside S3's limits (5 MiB to 5 GiB)", cfg.PartSize))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return nil, retry.Permanent(fmt.Errorf("s3 timeout %v is negative", cfg.Timeout))
	}
	if cfg.Concurrency < 0 {
		return nil, retry.Permanent(fmt.Errorf("s3 concurrency %d is negative", cfg.Concurrency))
	}
	q := u.Query()
	endpoint, err := endpointURL(q.Get("endpoint"), q.Get("scheme"))
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("cache URL s3://%s: %w", u.Host, err))
	}

	// The queue drives retries: one attempt per call here, so a failing
	// server never holds a worker in a hidden retry loop.
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			// The SDK keeps 10 idle connections per host; the uploader
			// has up to 256 requests in flight (uploader/limits.go) and
			// a slow link would pay a handshake for most of them.
			t.MaxIdleConns, t.MaxIdleConnsPerHost = idleConns, idleConns
			watchTransport(t)
		})),
	}
	if r := q.Get("region"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if p := q.Get("profile"); p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("load AWS config for s3://%s: %w", u.Host, err))
	}
	// Wrapped only now: the config loader adds AWS_CA_BUNDLE to the
	// client it knows.
	requests := &cache.RequestCounter{}
	awsCfg.HTTPClient = &stallClient{next: awsCfg.HTTPClient, timeout: cfg.Timeout, requests: requests}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			// Custom servers are reached by path (host/bucket/key): they
			// rarely have a DNS name per bucket.
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		// Checksums only where the API demands them: many S3-compatible
		// servers reject the SDK's default CRC headers and aws-chunked
		// trailers. Bodies are still covered by SigV4's payload hash.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	server := endpoint
	if server == "" {
		server = "aws:" + awsCfg.Region
	}
	c := &Cache{
		client:   client,
		bucket:   u.Host,
		prefix:   strings.Trim(u.Path, "/"),
		endpoint: endpoint,
		cfg:      cfg,
		limiter:  cache.LimiterFor("s3 " + server + "/" + u.Host),
		requests: requests,
	}
	c.parts.New = func() any { b := make([]byte, c.cfg.PartSize); return &b }
	c.heads.New = func() any { b := make([]byte, headSize); return &b }
	return c, nil
}

// endpointURL turns Nix's endpoint and scheme settings into a base URL.
// An endpoint may be a bare host[:port] or a whole URL.
func endpointURL(endpoint, scheme string) (string, error) {
	switch scheme {
	case "", "http", "https":
	default:
		return "", fmt.Errorf("scheme %q: want http or https", scheme)
	}
	if endpoint == "" {
		if scheme == "http" {
			return "", errors.New("scheme=http needs an endpoint= (AWS itself is reached over https)")
		}
		return "", nil
	}
	if !strings.Contains(endpoint, "://") {
		if scheme == "" {
			scheme = "https"
		}
		endpoint = scheme + "://" + endpoint
	}
	e, err := url.Parse(endpoint)
	if err != nil || e.Host == "" || (e.Scheme != "http" && e.Scheme != "https") {
		return "", fmt.Errorf("endpoint %q: want host[:port] or http(s)://host[:port]", endpoint)
	}
	if e.User != nil {
		return "", errors.New("endpoint: credentials do not belong in the URL")
	}
	if scheme != "" && e.Scheme != scheme {
		return "", fmt.Errorf("endpoint %q contradicts scheme=%s", endpoint, scheme)
	}
	return strings.TrimSuffix(e.String(), "/"), nil
}

// String is the bucket and prefix, plus the endpoint when not AWS.
func (c *Cache) String() string {
	s := "s3://" + c.bucket
	if c.prefix != "" {
		s += "/" + c.prefix
	}
	if c.endpoint != "" {
		s += " at " + c.endpoint
	}
	return s
}

// key is the object key of a cache key, as Nix's S3 store names it.
func (c *Cache) key(key string) string {
	if c.prefix == "" {
		return key
	}
	return c.prefix + "/" + key
}

// checkBucket fails permanently when the bucket is missing or refuses us.
func (c *Cache) checkBucket(ctx context.Context) error {
	err := c.call(ctx, func() error {
		_, err := c.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.bucket)})
		return err
	})
	if err == nil {
		return nil
	}
	if isCredentialsError(err) {
		// No credentials anywhere in the chain: a setup problem.
		return retry.Permanent(fmt.Errorf("open %s: no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or ?profile= for a profile of ~/.aws/config: %w", c, err))
	}
	if status := httpStatus(err); status >= 400 && status < 500 {
		// A HEAD response has no body, hence no error code: a 404 may be
		// a missing bucket or (on some servers) an unknown access key.
		// Ask again with a GET to learn which.
		lerr := c.call(ctx, func() error {
			_, err := c.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(c.bucket), MaxKeys: aws.Int32(1)})
			return err
		})
		switch {
		case lerr == nil:
			return nil
		case errorCode(lerr) == "NoSuchBucket" || (httpStatus(lerr) == http.StatusNotFound && !authCodes[errorCode(lerr)]):
			return retry.Permanent(fmt.Errorf("open %s: bucket %q does not exist: create it or fix the cache URL", c, c.bucket))
		case httpStatus(lerr) != 0:
			err = lerr
		}
	}
	return c.classify("check bucket "+c.bucket, err)
}

// Exists asks for the object's headers.
func (c *Cache) Exists(ctx context.Context, key string) (bool, error) {
	err := c.call(ctx, func() error {
		_, err := c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.key(key))})
		return err
	})
	if err == nil {
		return true, nil
	}
	if missingObject(err) {
		return false, nil
	}
	return false, c.classify("check "+key, err)
}

// Get opens the object for streaming.
func (c *Cache) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	var out *s3.GetObjectOutput
	err := c.call(ctx, func() (err error) {
		out, err = c.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.key(key))})
		return err
	})
	if err == nil {
		return out.Body, nil
	}
	if missingObject(err) {
		return nil, fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	return nil, c.classify("read "+key, err)
}

// existing describes the object under key for Create's caller: whether
// it holds the bytes of the given size and ETag (S3's ETag is the MD5 of
// an object put in one request, and the MD5 of its parts' MD5s, with
// "-N", of one uploaded in N parts: both computed here from the bytes
// sent), and its age by the server's clock.
func (c *Cache) existing(ctx context.Context, key string, size int64, etag string) error {
	found, osize, oetag, age, err := c.head(ctx, key)
	switch {
	case err != nil:
		return err
	case !found:
		// Gone since the refusal (a gc): not an object to name.
		return &cache.ExistsError{Key: key}
	}
	return existsError(key, size, etag, osize, oetag, age)
}

func existsError(key string, size int64, etag string, osize int64, oetag string, age time.Duration) error {
	return &cache.ExistsError{Key: key, Identical: osize == size && strings.EqualFold(oetag, etag), Age: age}
}

// head is the object's size, ETag (without quotes) and age by the
// server's clock (its Date header less its Last-Modified); found is
// false when it is missing.
func (c *Cache) head(ctx context.Context, key string) (found bool, size int64, etag string, age time.Duration, err error) {
	var out *s3.HeadObjectOutput
	err = c.call(ctx, func() (err error) {
		out, err = c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.key(key))})
		return err
	})
	if missingObject(err) {
		return false, 0, "", 0, nil
	}
	if err != nil {
		return false, 0, "", 0, c.classify("check "+key, err)
	}
	now := time.Now()
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			now = t
		}
	}
	// Both clocks tick in whole seconds: a fresh object may look 1 s
	// younger than now.
	return true, aws.ToInt64(out.ContentLength), strings.Trim(aws.ToString(out.ETag), `"`), max(0, now.Sub(aws.ToTime(out.LastModified))), nil
}
