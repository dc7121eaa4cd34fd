package queue

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// A damaged header must give a clear error, not a panic, and leave the file
// as it was: a post-build-hook that panics fails the user's build.
func TestOpenRefusesBadSchemaVersion(t *testing.T) {
	for _, version := range []int{-5, -1, -2147483648} {
		for name, open := range openers {
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "queue.db")
				closeWithFixture(t, path)
				execRaw(t, path, "PRAGMA user_version = "+itoa(version))
				before := readFile(t, path)

				q, err := open(path)
				if err == nil {
					q.Close()
					t.Fatal("open succeeded, want error")
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error = %v, want ErrCorrupt", err)
				}
				if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
					t.Errorf("error %q should be one line naming %s", msg, path)
				}
				if !bytes.Equal(readFile(t, path), before) {
					t.Error("open modified the file")
				}
			})
		}
	}
}

// openers are the ways to open a queue that a fault must never crash.
var openers = map[string]func(string) (*Queue, error){
	"Open":     Open,
	"OpenFast": OpenFast,
}
