package servertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Versitygw is a real S3 server, versitygw with its posix backend, with
// one bucket that is a plain directory: objects are stored as files
// (metadata in xattrs), so BucketDir is also a file:// binary cache that
// Nix can read, and a bench or fault scenario can count narinfos on disk.
// versitygw is installed by scripts/deps.sh.
type Versitygw struct {
	*Server
	Bucket               string // created empty by the first Start
	Root                 string // the posix backend's root: Dir/s3
	AccessKey, SecretKey string // its root account's keys, fresh for each server
	created              bool
}

// NewVersitygw describes a versitygw keeping everything under dir, with
// the bucket named bucket; Start runs it.
func NewVersitygw(dir, bucket string) *Versitygw {
	v := &Versitygw{Bucket: bucket, Root: filepath.Join(dir, "s3"),
		AccessKey: "AK" + randomHex(9), SecretKey: randomHex(20)}
	v.Server = &Server{Name: "versitygw", Dir: dir, launch: v.launch, readyPath: "/health", readyStatus: http.StatusOK}
	return v
}

// StartVersitygw runs a versitygw for the test (MustStart) in a temp dir,
// with an empty bucket "nixpush-test", and points the test's AWS
// credential chain at it (SetEnv).
func StartVersitygw(t testing.TB) *Versitygw {
	t.Helper()
	v := MustStart(t, NewVersitygw(t.TempDir(), "nixpush-test"))
	v.SetEnv(t)
	return v
}

// launch is the command line serving Root on port. The keys go through
// the environment, not argv, where ps would show them.
func (v *Versitygw) launch(port int) (string, []string, []string, error) {
	bin, err := binary("versitygw", "run scripts/deps.sh")
	if err != nil {
		return "", nil, nil, err
	}
	if err := os.MkdirAll(v.Root, 0o755); err != nil {
		return "", nil, nil, fmt.Errorf("create versitygw root: %w", err)
	}
	args := []string{"--port", fmt.Sprintf("127.0.0.1:%d", port), "--health", "/health", "--quiet", "posix", v.Root}
	return bin, args, []string{"ROOT_ACCESS_KEY=" + v.AccessKey, "ROOT_SECRET_KEY=" + v.SecretKey}, nil
}

// Start starts the server (Server.Start); the first time, it creates the
// bucket through the S3 API, as an operator would, and checks that the
// posix backend made it the directory BucketDir.
func (v *Versitygw) Start() error {
	if err := v.Server.Start(); err != nil {
		return err
	}
	if v.created {
		return nil
	}
	err := v.CreateBucket(context.Background(), v.Bucket)
	if err == nil {
		if fi, serr := os.Stat(v.BucketDir()); serr != nil || !fi.IsDir() {
			err = errors.Join(errors.New("bucket is not a directory of the posix backend"), serr)
		}
	}
	if err != nil {
		v.Stop()
		return fmt.Errorf("create bucket %s on versitygw: %w", v.Bucket, err)
	}
	v.created = true
	return nil
}

// BucketDir holds the bucket's objects as files.
func (v *Versitygw) BucketDir() string { return filepath.Join(v.Root, v.Bucket) }

// URL is the cache URL of the bucket, with an optional key prefix.
func (v *Versitygw) URL(prefix string) *url.URL {
	u := &url.URL{Scheme: "s3", Host: v.Bucket, RawQuery: url.Values{"endpoint": {v.Addr}, "scheme": {"http"}}.Encode()}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	return u
}

// Client is a plain S3 client for the server, with its root keys, to
// look behind a cache's back.
func (v *Versitygw) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + v.Addr),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(v.AccessKey, v.SecretKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// CreateBucket makes another empty bucket.
func (v *Versitygw) CreateBucket(ctx context.Context, name string) error {
	_, err := v.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

// AWSEnv is the environment that points an AWS SDK (nixpush's, Nix's) at
// this server's root keys and at nothing of the host's AWS setup: no
// config or credentials file (both name a file under dir that does not
// exist), no instance metadata.
func (v *Versitygw) AWSEnv(dir string) []string {
	none := filepath.Join(dir, "no-aws-config")
	return []string{
		"AWS_ACCESS_KEY_ID=" + v.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + v.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
	}
}

// SetEnv points the AWS SDK's default chain of this test (t.Setenv) at
// the server's keys only (AWSEnv), with every other AWS setting that could
// come from the host emptied.
func (v *Versitygw) SetEnv(t testing.TB) {
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
	for _, kv := range v.AWSEnv(t.TempDir()) {
		k, val, _ := strings.Cut(kv, "=")
		t.Setenv(k, val)
	}
}
