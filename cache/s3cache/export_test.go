package s3cache

import "testing"

// SetMaxParts lowers S3's parts limit for the test.
func SetMaxParts(t *testing.T, n int64) {
	old := maxParts
	maxParts = n
	t.Cleanup(func() { maxParts = old })
}
