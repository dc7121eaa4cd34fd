package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"nixpush/retry"
)

// announceRetries makes every retry under ctx visible on a terminal: what
// failed and when the next try is, instead of a minute of silence before
// the last attempt's error. Off a terminal the logs say it.
func announceRetries(ctx context.Context, w io.Writer) context.Context {
	if !isTerminal(w) {
		return ctx
	}
	return retry.WithNotify(ctx, func(n retry.Notice) {
		of := ""
		if n.Of > 0 {
			of = fmt.Sprintf(" of %d", n.Of)
		}
		fmt.Fprintf(w, "nixpush: %s; retry %d%s in %s\n", describeFailure(n.Err), n.Retry, of, roundDuration(n.In))
	})
}

// describeFailure says in a few words why a request to a cache failed.
func describeFailure(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "cache unreachable (connection refused)"
	case errors.As(err, &dns):
		return "cache unreachable (cannot resolve " + dns.Name + ")"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "cache unreachable (no route to host)"
	case errors.Is(err, syscall.ECONNRESET):
		return "cache connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "cache not answering (timed out)"
	}
	return "cache request failed (" + oneLine(err.Error()) + ")"
}

// roundDuration shows a wait as people read it: 400ms, 1.5s, 12s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}
