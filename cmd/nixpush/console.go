package main

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// console is a command's stderr. Every line a command writes there (log
// lines, messages, the summary) goes through it, so on a terminal the
// status line (progress) is cleared before each line and drawn again
// after it: one voice per stream, no log line printed into the bar.
type console struct {
	mu       sync.Mutex
	w        io.Writer
	file     *os.File // stderr itself, when it is a file (terminal, journal)
	tty      bool
	status   func() string // the status line's text, while one is shown
	drawn    bool          // the status line is on the screen
	lineOpen bool          // a line was begun and not ended: no redraw now
}

// newConsole wraps w; on a terminal it can show a status line.
func newConsole(w io.Writer) *console {
	c := &console{w: w}
	if f, ok := w.(*os.File); ok {
		c.file = f
		c.tty = term.IsTerminal(int(f.Fd()))
	}
	return c
}

// Write writes p below a cleared status line and draws the status again
// once p has ended its line.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	n, err := c.w.Write(p)
	if len(p) > 0 {
		c.lineOpen = p[len(p)-1] != '\n'
	}
	c.drawLocked()
	return n, err
}

// showStatus shows text() as the status line, refreshed every interval,
// until the returned function is called, which clears it.
func (c *console) showStatus(text func() string, interval time.Duration) (stop func()) {
	if !c.tty {
		return func() {}
	}
	c.mu.Lock()
	c.status = text
	c.drawLocked()
	c.mu.Unlock()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.mu.Lock()
				c.drawLocked()
				c.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			c.mu.Lock()
			c.clearLocked()
			c.status = nil
			c.mu.Unlock()
		})
	}
}

func (c *console) clearLocked() {
	if c.drawn {
		_, _ = io.WriteString(c.w, "\r\033[K")
		c.drawn = false
	}
}

// drawLocked (re)draws the status line, cut to the terminal's width so it
// never wraps (a wrapped line could not be cleared).
func (c *console) drawLocked() {
	if c.status == nil || c.lineOpen {
		return
	}
	line := c.status()
	if w, _, err := term.GetSize(int(c.file.Fd())); err == nil && w > 1 {
		line = cutRunes(line, w-1)
	}
	var b bytes.Buffer
	if c.drawn {
		b.WriteString("\r\033[K")
	}
	b.WriteString(line)
	_, _ = c.w.Write(b.Bytes())
	c.drawn = true
}

func cutRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// consoleOf is the console behind w, if w is one.
func consoleOf(w io.Writer) *console {
	c, _ := w.(*console)
	return c
}
