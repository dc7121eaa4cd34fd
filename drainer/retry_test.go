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
