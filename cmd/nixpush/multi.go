package main

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// linePrefixer writes complete lines to w, each starting with prefix: the
// reports of several caches pushed at once stay readable.
type linePrefixer struct {
	w      io.Writer
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := io.WriteString(l.w, l.prefix+string(l.buf[:i+1])); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
}

// joinErrors is the error of several caches' runs: nil when all worked;
// the one error, with its exit code, when one failed; else all of them.
func joinErrors(errs []error) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	return errors.Join(failed...)
}
