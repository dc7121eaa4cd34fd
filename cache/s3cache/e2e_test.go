package s3cache_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// TestPushSubstitute pushes a closure through the uploader into versitygw
// with a Nix-style s3:// URL, then has real Nix substitute every path from
// the bucket's directory as a file:// cache: the posix backend stores
// objects as plain files under their keys, so this checks keys, NARs,
// narinfos and signatures together.
func TestPushSubstitute(t *testing.T) {
	s := servertest.StartVersitygw(t)
	endpoint, bucket, dir := s.Addr, s.Bucket, s.Root
	store := nixtest.NewStore(t)
	var roots []string
	for k := range 6 {
		roots = append(roots, store.Build(t, nixtest.FibChain("s3", k))...)
	}
	roots = append(roots, store.Build(t, "("+nixtest.WithReference("s3")+").top")...)
	secFile, _, pub := nixtest.Keygen(t, "s3-test-1")
	key, err := uploader.LoadSigningKey(secFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := nixstore.Open(store.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	u, err := url.Parse(fmt.Sprintf("s3://%s?endpoint=%s&scheme=http", bucket, endpoint))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	sc, err := s3cache.New(ctx, u, s3cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.EnsureCacheInfo(ctx, sc, 40); err != nil {
		t.Fatal(err)
	}
	closure, err := st.Closure(ctx, roots)
	if err != nil {
		t.Fatal(err)
	}
	if len(closure) != 8 { // fib 0..5, and top with its dep
		t.Fatalf("closure of %q has %d paths, want 8", roots, len(closure))
	}
	plan, err := uploader.MakePlan(ctx, sc, closure, uploader.Filter{})
	if err != nil || len(plan.Upload) != len(closure) {
		t.Fatalf("plan: %+v, %v; want all %d paths to upload", plan, err, len(closure))
	}
	up := uploader.New(st, sc, uploader.DefaultCompression, []signature.SecretKey{key}, 4, zaptest.NewLogger(t))
	for p, r := range up.Upload(ctx, plan.Upload) {
		if r.Err != nil {
			t.Errorf("upload %s: %v", p, r.Err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if plan, err := uploader.MakePlan(ctx, sc, closure, uploader.Filter{}); err != nil || plan.Present != len(closure) {
		t.Errorf("second plan: %+v, %v; want all %d present", plan, err, len(closure))
	}

	// Every object is a plain file holding exactly the object's bytes.
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")})
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	// And the object that learned whether the server honours
	// If-None-Match (CanCreate), under nixpush/ where Nix never reads.
	want := map[string]bool{"nix-cache-info": true, "nixpush/conditional-write-probe": true}
	for _, info := range closure {
		want[cache.NarInfoKey(info.Path)] = true
		want[cache.NARKeyPrefix(info)] = true
	}
	var got []string
	for _, o := range list.Contents {
		k := aws.ToString(o.Key)
		if strings.HasPrefix(k, "nar/") { // nar/<NAR hash>-<encoder>.nar.zst
			got = append(got, k[:strings.LastIndexByte(k, '-')])
		} else {
			got = append(got, k)
		}
		r, err := sc.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		file, err := os.ReadFile(filepath.Join(dir, bucket, filepath.FromSlash(k)))
		if err != nil || !bytes.Equal(file, obj) {
			t.Errorf("file of object %s: %d bytes, %v; object has %d", k, len(file), err, len(obj))
		}
	}
	slices.Sort(got)
	got = slices.Compact(got) // paths with the same NAR each have an object
	if wantKeys := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantKeys) {
		t.Errorf("bucket holds %q\nwant %q", got, wantKeys)
	}

	cacheURL := "file://" + filepath.Join(dir, bucket)
	out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), cacheURL, pub, roots...)
	if err != nil {
		t.Fatalf("Substitute: %v\n%s", err, out)
	}
	for _, info := range closure {
		if !strings.Contains(out, "copying path '"+info.Path+"' from '"+cacheURL) {
			t.Errorf("Nix did not copy %s from the bucket:\n%s", info.Path, out)
		}
	}
	// The signatures are what made Nix accept them.
	_, _, otherPub := nixtest.Keygen(t, "s3-other-1")
	out, err = nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh-other"), cacheURL, otherPub, roots...)
	if err == nil || !strings.Contains(out, "not signed by") {
		t.Errorf("Substitute trusting another key: %v; want \"not signed by\":\n%s", err, out)
	}
}
