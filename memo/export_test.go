package memo

import (
	"testing"
	"time"
)

// SetFlushEvery sets flushEvery for one test.
func SetFlushEvery(t *testing.T, d time.Duration) {
	old := flushEvery
	flushEvery = d
	t.Cleanup(func() { flushEvery = old })
}

const FlushBatch = flushBatch
