package s3cache

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"nixpush/cache"
	"nixpush/internal/servertest"
)

// TestLeftoverUploadAbortedLater: a multipart upload whose abort failed
// (the server was down then) is aborted by the next Put once the server
// answers, so its parts do not stay on the server. (The abort failing
// against a restarting server is the fault suite's s3-restart-multipart.)
func TestLeftoverUploadAbortedLater(t *testing.T) {
	s := servertest.StartVersitygw(t)
	endpoint, bucket := s.Addr, s.Bucket
	u, err := url.Parse("s3://" + bucket + "?endpoint=" + endpoint + "&scheme=http&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(t.Context(), u, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	up, err := c.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(c.key("nar/left.nar"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(c.key("nar/left.nar")),
		UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader(strings.Repeat("x", 1024))}); err != nil {
		t.Fatal(err)
	}
	c.leftovers.add("nar/left.nar", aws.ToString(up.UploadId)) // as abort does when the server is down
	inProgress := func() int {
		out, err := c.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	if n := inProgress(); n != 1 {
		t.Fatalf("%d uploads in progress, want the leftover", n)
	}
	if err := c.Put(ctx, "small", strings.NewReader("x"), cache.TypeNarInfo); err != nil {
		t.Fatal(err)
	}
	// The next Put starts the abort in the background.
	for deadline := time.Now().Add(10 * time.Second); inProgress() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d uploads still in progress 10 s after the next Put", inProgress())
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
