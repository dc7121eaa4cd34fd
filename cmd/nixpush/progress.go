package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"nixpush/uploader"
)

// startProgress shows, on a terminal, a progress bar of the paths pushed
// with bytes, rate and time left; nothing on a pipe or a log. It returns
// the function that stops it.
func startProgress(w io.Writer, s *uploader.Stats, total int) (stop func()) {
	if !isTerminal(w) || total == 0 {
		return func() {}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("pushing"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("paths"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	start := time.Now()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			bytes := s.Bytes.Load()
			rate := float64(bytes) / time.Since(start).Seconds()
			bar.Describe(fmt.Sprintf("%s (%s/s)", mib(bytes), mib(int64(rate))))
			_ = bar.Set(int(s.Paths.Load()))
			select {
			case <-done:
				_ = bar.Clear()
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// countProgress is a spinner with a count, for work whose total grows as
// it goes (verify, gc); a no-op off a terminal.
type countProgress struct{ bar *progressbar.ProgressBar }

func startCountProgress(w io.Writer, what string) *countProgress {
	if !isTerminal(w) {
		return &countProgress{}
	}
	return &countProgress{bar: progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *countProgress) update(done, total int) {
	if p.bar != nil {
		_ = p.bar.Set(done)
	}
}

func (p *countProgress) done() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}
