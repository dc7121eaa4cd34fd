package drainer

import (
	"testing"
	"time"
)

// TestOutagePausesOnceAndRecovers: during an outage the drainer pauses as
// a whole; failures while paused do not extend or re-log the pause, and a
// success ends it.
func TestOutagePausesOnceAndRecovers(t *testing.T) {
	o := outage{log: zapNop()}
	now := time.Now()
	until := o.failed(now, errTest)
	if !o.paused(now) || !until.After(now) {
		t.Fatalf("after a failure: paused %v until %s", o.paused(now), until)
	}
	if again := o.failed(now.Add(time.Millisecond), errTest); !again.Equal(until) {
		t.Fatalf("a failure while paused moved the pause from %s to %s", until, again)
	}
	o.succeeded()
	if o.paused(now) {
		t.Fatal("still paused after a success")
	}
}

// stalled is a failure noticed a timeout after the server last moved a
// byte, as a backend's stall reports it.
type stalled struct{ since time.Time }

func (s stalled) Error() string           { return "stalled: no progress" }
func (s stalled) FailingSince() time.Time { return s.since }

// TestStallCountsFromLastProgress: a stalled request makes the cache
// failing since its last byte moved, not since the stall was noticed, so
// /healthz turns 503 within --unhealthy-after of a server freezing.
func TestStallCountsFromLastProgress(t *testing.T) {
	o := outage{log: zapNop()}
	now := time.Now()
	o.failed(now, stalled{since: now.Add(-3 * time.Second)})
	if want := now.Add(-3 * time.Second); !o.since.Equal(want) {
		t.Errorf("failing since %v, want the last progress %v", o.since, want)
	}
}
