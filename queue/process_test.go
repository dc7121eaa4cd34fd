package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// claimerEnv names the queue file a re-executed test binary drains.
const claimerEnv = "QUEUE_TEST_CLAIMER_DB"

// TestClaimerProcess is not a test on its own: TestClaimAcrossProcesses runs
// the test binary again with claimerEnv set, and this then acts as another
// nixpush process draining the shared queue.
func TestClaimerProcess(t *testing.T) {
	path := os.Getenv(claimerEnv)
	if path == "" {
		t.Skip("helper process for TestClaimAcrossProcesses")
	}
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	fmt.Println("ready")
	// Start together with the other claimers: wait for the parent's go.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := drain(q, 3, func(p string) { fmt.Println("claimed " + p) }); err != nil {
		t.Fatal(err)
	}
}

// drain claims n at a time and completes each until nothing is pending.
func drain(q *Queue, n int, claimed func(string)) error {
	ctx := context.Background()
	for {
		items, err := q.Claim(ctx, n, t0, Everything)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		for _, it := range items {
			claimed(it.Path)
			if err := q.Complete(ctx, it.Path, 1, t0); err != nil {
				return err
			}
		}
	}
}

// TestClaimAcrossProcesses drains one file from three processes at once and
// checks every path is claimed exactly once.
func TestClaimAcrossProcesses(t *testing.T) {
	if os.Getenv(claimerEnv) != "" {
		t.Skip("running as a helper")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	paths := storePaths("x", 3000)
	mustEnqueue(t, q, paths...)

	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var children []child
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestClaimerProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), claimerEnv+"="+path)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := child{cmd, stdin, bufio.NewScanner(stdout)}
		if !c.out.Scan() || c.out.Text() != "ready" {
			t.Fatalf("helper did not start: %q %v", c.out.Text(), c.out.Err())
		}
		children = append(children, c)
	}

	var (
		mu   sync.Mutex
		seen = map[string][]string{} // path → claimers
		wg   sync.WaitGroup
	)
	record := func(who, p string) {
		mu.Lock()
		seen[p] = append(seen[p], who)
		mu.Unlock()
	}
	for i, c := range children {
		who := fmt.Sprintf("child %d", i)
		wg.Go(func() {
			for c.out.Scan() {
				if p, ok := strings.CutPrefix(c.out.Text(), "claimed "); ok {
					record(who, p)
				}
			}
		})
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		c.stdin.Close()
	}
	if err := drain(q, 2, func(p string) { record("parent", p) }); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // stdout fully read: Wait must come after
	for _, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}

	if len(seen) != len(paths) {
		t.Errorf("claimed %d distinct paths, want %d", len(seen), len(paths))
	}
	perClaimer := map[string]int{}
	for p, who := range seen {
		if len(who) != 1 {
			t.Errorf("%s claimed by %v", p, who)
		}
		perClaimer[who[0]]++
	}
	t.Logf("claims per process: %v", perClaimer)
}
