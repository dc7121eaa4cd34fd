package servertest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// put stores body at url with an HTTP PUT and wants 201 or 204.
func put(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT %s: %s", url, resp.Status)
	}
}

// get returns the body at url, or the error of a client that waits at
// most timeout.
func get(url string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestNginxComesBackOnItsAddressAfterStop(t *testing.T) {
	n := StartNginx(t, "")
	url := n.URL()
	put(t, url+"/a/b.narinfo", "kept")
	if _, err := os.Stat(filepath.Join(n.CacheDir, "a", "b.narinfo")); err != nil {
		t.Fatalf("PUT did not land in CacheDir: %v", err)
	}
	pid := n.Pid()
	n.Stop()
	if n.Running() {
		t.Fatal("Running after Stop")
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("nginx's process group still has processes after Stop (%v)", err)
	}
	if _, err := get(url+"/a/b.narinfo", 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET while stopped: %v, want connection refused", err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if n.URL() != url {
		t.Errorf("URL after restart = %s, want %s", n.URL(), url)
	}
	if body, err := get(url+"/a/b.narinfo", 5*time.Second); err != nil || body != "kept" {
		t.Errorf("GET after restart = %q, %v; want the object stored before", body, err)
	}
}

func TestNginxRefusesWithoutItsCredentials(t *testing.T) {
	n := StartNginx(t, Bearer("right"))
	resp, err := http.Get(n.URL() + "/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %s, want 401", resp.Status)
	}
}

func TestFrozenServerAnswersOnlyAfterThaw(t *testing.T) {
	n := StartNginx(t, "")
	MustFreeze(t, n)
	if _, err := get(n.URL()+"/", 300*time.Millisecond); err == nil {
		t.Fatal("a frozen nginx answered")
	}
	n.Thaw()
	if err := n.Ready(); err != nil {
		t.Fatalf("after Thaw: %v", err)
	}
}

func TestVersitygwBucketIsADirectory(t *testing.T) {
	v := StartVersitygw(t)
	if got := os.Getenv("AWS_ACCESS_KEY_ID"); got != v.AccessKey {
		t.Errorf("AWS_ACCESS_KEY_ID = %q, want the server's key", got)
	}
	ctx := context.Background()
	_, err := v.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.Bucket), Key: aws.String("nix-cache-info"),
		Body: strings.NewReader("StoreDir: /nix/store\n")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(v.BucketDir(), "nix-cache-info"))
	if err != nil || string(b) != "StoreDir: /nix/store\n" {
		t.Errorf("object on disk = %q, %v", b, err)
	}
	if u := v.URL("team"); u.Host != v.Bucket || u.Path != "/team" || u.Query().Get("endpoint") != v.Addr {
		t.Errorf("URL = %s", u)
	}
}
