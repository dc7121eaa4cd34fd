package main

import (
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"nixpush/uploader"
)

// progressEvery is how often a status line is redrawn.
const progressEvery = 200 * time.Millisecond

// startProgress shows, on a terminal, a push's status line: paths done
// of total, NAR bytes read of totalBytes and compressed bytes sent as
// they move, the rate and time left from those bytes, and the NARs in
// flight; nothing on a pipe or a log. It returns the function that
// clears it.
func startProgress(w io.Writer, up *uploader.Uploader, total int, totalBytes int64) (stop func()) {
	c := consoleOf(w)
	if c == nil || !c.tty || total == 0 {
		return func() {}
	}
	p := &pushProgress{up: up, total: total, totalBytes: totalBytes, start: time.Now()}
	return c.showStatus(p.line, progressEvery)
}

// pushProgress computes the status line from the uploader's counters.
type pushProgress struct {
	up         *uploader.Uploader
	total      int
	totalBytes int64
	start      time.Time
	mu         sync.Mutex
	samples    []sample // the last few seconds of bytes read, for the rate
}

type sample struct {
	at   time.Time
	read int64
}

// rateWindow is how far back the rate looks: long enough to smooth a
// NAR's bursts, short enough to follow a change of link.
const rateWindow = 5 * time.Second

func (p *pushProgress) line() string {
	s := &p.up.Stats
	read, sent, done := s.Read.Load(), s.Sent.Load(), s.Paths.Load()
	rate := p.rate(time.Now(), read)
	var b strings.Builder
	fmt.Fprintf(&b, "pushing %d of %s", done, plural(p.total, "path"))
	if p.totalBytes > 0 {
		fmt.Fprintf(&b, " · %s of %s read", mib(read), mib(p.totalBytes))
	} else {
		fmt.Fprintf(&b, " · %s read", mib(read))
	}
	fmt.Fprintf(&b, ", %s sent · %s/s", mib(sent), mib(int64(rate)))
	if left := p.totalBytes - read; p.totalBytes > 0 && rate > 0 && left > 0 {
		fmt.Fprintf(&b, " · %s left", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
	}
	flight := p.up.InFlight()
	for i, t := range flight {
		if i == 3 {
			fmt.Fprintf(&b, " +%d", len(flight)-3)
			break
		}
		sep := ", "
		if i == 0 {
			sep = " · "
		}
		b.WriteString(sep + flightLabel(t))
	}
	return b.String()
}

// flightLabel names an upload in flight and how far it has read: "foo 34%".
func flightLabel(t uploader.Transfer) string {
	pct := 0
	if t.NarSize > 0 {
		pct = int(100 * t.Read / int64(t.NarSize))
	}
	return fmt.Sprintf("%s %d%%", shortName(t.Path), pct)
}

// rate is bytes read per second over the last rateWindow.
func (p *pushProgress) rate(now time.Time, read int64) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples = append(p.samples, sample{now, read})
	for len(p.samples) > 1 && now.Sub(p.samples[0].at) > rateWindow {
		p.samples = p.samples[1:]
	}
	first := p.samples[0]
	if first.at.Equal(now) {
		first = sample{p.start, 0}
	}
	secs := now.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(read-first.read) / secs
}

// shortName is a store path's name without its hash, cut to fit a status
// line.
func shortName(p string) string {
	name := path.Base(p)
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[i+1:]
	}
	return cutRunes(name, 24)
}

// countProgress is a status line with a count, for work whose total grows
// as it goes (verify, gc); a no-op off a terminal.
type countProgress struct {
	mu          sync.Mutex
	what        string
	done, total int
	stop        func()
}

func startCountProgress(w io.Writer, what string) *countProgress {
	p := &countProgress{what: what, stop: func() {}}
	if c := consoleOf(w); c != nil && c.tty {
		p.stop = c.showStatus(p.line, progressEvery)
	}
	return p
}

func (p *countProgress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total > 0 {
		return fmt.Sprintf("%s: %d of %d", p.what, p.done, p.total)
	}
	return fmt.Sprintf("%s: %d", p.what, p.done)
}

func (p *countProgress) update(done, total int) {
	p.mu.Lock()
	p.done, p.total = done, total
	p.mu.Unlock()
}

func (p *countProgress) finish() { p.stop() }
