package metrics

import (
	"testing"
	"time"
)

// TestHealthReasons: /healthz fails for each reason the daemon cannot push
// (a frozen server produces no error, only no progress), and recovers.
func TestHealthReasons(t *testing.T) {
	const after = time.Minute
	now := time.Now()
	m := New(openQueue(t))
	if _, ok := m.registry.healthz(now, after); !ok {
		t.Fatal("a fresh daemon is unhealthy")
	}

	busy, last := true, now.Add(-2*after)
	m.WatchProgress(func() (bool, time.Time) { return busy, last })
	if st, ok := m.registry.healthz(now, after); ok || st["uploads_stalled_for_seconds"] == nil {
		t.Errorf("uploads that moved no byte for 2 min: healthy %v, %v", ok, st)
	}
	last = now.Add(-time.Second)
	if _, ok := m.registry.healthz(now, after); !ok {
		t.Error("uploads moving bytes: unhealthy")
	}
	busy, last = false, now.Add(-time.Hour)
	if _, ok := m.registry.healthz(now, after); !ok {
		t.Error("an idle daemon: unhealthy")
	}

	m.QueueFailing(now.Add(-2 * after))
	if _, ok := m.registry.healthz(now, after); ok {
		t.Error("queue writes failing for 2 min: healthy")
	}
	m.QueueFailing(time.Time{})

	m.QueueDamaged("queue file x is damaged: move it away")
	if st, ok := m.registry.healthz(now, after); ok || st["queue_damaged"] == nil {
		t.Errorf("damaged queue: healthy %v, %v", ok, st)
	}
}
