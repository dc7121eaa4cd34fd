package main

import (
	"fmt"
	"os"
	"time"

	"nixpush/uploader"
)

// startProgress redraws one status line on stderr while uploads run, when
// stderr is a terminal; it returns the function that stops it.
func startProgress(s *uploader.Stats, total int) (stop func()) {
	if !stderrIsTerminal() || total == 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			fmt.Fprintf(os.Stderr, "\r\033[K[%d/%d] %s pushed", s.Paths.Load(), total, mib(s.Bytes.Load()))
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
