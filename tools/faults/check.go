package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nix-community/go-nix/pkg/nixhash"
)

// checkCache reads the cache in dir as a substituter would and returns
// what is wrong: a narinfo whose NAR object is missing or whose FileSize
// or FileHash does not describe that object, or a reference without a
// narinfo. Every cache of the suite (file://, nginx, versitygw's posix
// bucket) is a directory, so it is read on disk, without going through
// the server a scenario is breaking. hashes remembers the digests of
// objects already read (by name, size and mtime), so polling is cheap.
func checkCache(dir string, hashes map[string][]byte) (narinfos int, problems []string) {
	names, err := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	if err != nil {
		return 0, []string{fmt.Sprintf("list %s: %v", dir, err)}
	}
	for _, name := range names {
		fields, err := readNarinfo(name)
		if os.IsNotExist(err) {
			continue // never happens in these scenarios, which delete nothing
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", filepath.Base(name), err))
			continue
		}
		narinfos++
		if p := checkNAR(dir, fields, hashes); p != "" {
			problems = append(problems, filepath.Base(name)+": "+p)
		}
		for _, ref := range strings.Fields(fields["References"]) {
			hash, _, _ := strings.Cut(ref, "-")
			if _, err := os.Stat(filepath.Join(dir, hash+".narinfo")); err != nil {
				problems = append(problems, fmt.Sprintf("%s: reference %s has no narinfo", filepath.Base(name), ref))
			}
		}
	}
	return narinfos, problems
}

// readNarinfo returns a narinfo's "Key: value" lines.
func readNarinfo(name string) (map[string]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			fields[k] = v
		}
	}
	for _, k := range []string{"StorePath", "URL", "NarHash", "NarSize"} {
		if fields[k] == "" {
			return nil, fmt.Errorf("no %s", k)
		}
	}
	return fields, nil
}

// checkNAR checks that the object URL names exists with FileSize bytes
// and FileHash as its sha256.
func checkNAR(dir string, fields map[string]string, hashes map[string][]byte) string {
	obj := filepath.Join(dir, filepath.FromSlash(fields["URL"]))
	fi, err := os.Stat(obj)
	if err != nil {
		return fmt.Sprintf("NAR %s: %v", fields["URL"], err)
	}
	if s := fields["FileSize"]; s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err != nil || n != fi.Size() {
			return fmt.Sprintf("FileSize %s but %s has %d bytes", s, fields["URL"], fi.Size())
		}
	}
	want, err := nixhash.ParseAny(fields["FileHash"], nil)
	if fields["FileHash"] == "" || err != nil {
		return fmt.Sprintf("FileHash %q unreadable", fields["FileHash"])
	}
	key := fmt.Sprintf("%s|%d|%d", obj, fi.Size(), fi.ModTime().UnixNano())
	got, ok := hashes[key]
	if !ok {
		f, err := os.Open(obj)
		if err != nil {
			return fmt.Sprintf("NAR %s: %v", fields["URL"], err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Sprintf("read NAR %s: %v", fields["URL"], err)
		}
		got = h.Sum(nil)
		hashes[key] = got
	}
	if !bytes.Equal(got, want.Digest()) {
		return fmt.Sprintf("FileHash %s does not match %s", fields["FileHash"], fields["URL"])
	}
	return ""
}

// monitor polls a cache every pollEvery while a scenario runs and keeps
// the distinct problems it sees: a cache must be consistent at every
// moment, not only once the dust settles.
type monitor struct {
	dir      string
	stopped  chan struct{}
	finished chan struct{}
	mu       sync.Mutex
	polls    int
	problems []string
}

const (
	pollEvery   = 200 * time.Millisecond
	maxProblems = 10
)

func startMonitor(dir string) *monitor {
	m := &monitor{dir: dir, stopped: make(chan struct{}), finished: make(chan struct{})}
	go m.loop()
	return m
}

func (m *monitor) loop() {
	defer close(m.finished)
	hashes := map[string][]byte{}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		_, problems := checkCache(m.dir, hashes)
		m.mu.Lock()
		m.polls++
		for _, p := range problems {
			if len(m.problems) < maxProblems && !slices.Contains(m.problems, p) {
				m.problems = append(m.problems, p)
			}
		}
		m.mu.Unlock()
		select {
		case <-m.stopped:
			return
		case <-tick.C:
		}
	}
}

// stop ends the polling and returns how many polls ran and what they saw.
func (m *monitor) stop() (int, []string) {
	select {
	case <-m.stopped:
	default:
		close(m.stopped)
	}
	<-m.finished
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.polls, m.problems
}
