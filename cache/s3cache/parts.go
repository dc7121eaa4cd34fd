package s3cache

// maxParts is S3's limit on the parts of one multipart upload. A
// variable so that tests can reach it with small bodies.
var maxParts int64 = 10_000

// maxHint bounds the size hints partPlan computes with, against
// overflow: far above S3's 5 TiB object limit.
const maxHint = 1 << 50

// partPlan chooses the part size and the number of parts in flight of a
// body of about hint bytes (0: unknown). The configured part size fits
// bodies up to partSize × maxParts (80 GiB by default); a larger hint
// gets parts large enough that maxParts of them hold it, with a margin
// for compression overhead on incompressible data (a NAR's hint is its
// uncompressed size), rounded up to a MiB and at most S3's 5 GiB. Fewer
// of the larger parts are in flight, so memory stays within partSize ×
// concurrency, unless one part alone is more than that.
func partPlan(hint, partSize int64, concurrency int) (size int64, inFlight int) {
	if hint <= 0 {
		return partSize, concurrency
	}
	hint = min(hint, maxHint)
	need := hint + hint/100 + 1<<20
	size = (need + maxParts - 1) / maxParts
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	size = min(max(size, partSize), maxPartSize)
	inFlight = max(1, int(partSize*int64(concurrency)/size))
	return size, inFlight
}

// getPart is a buffer of size bytes. Buffers of the configured part size
// are pooled; larger ones, for huge bodies, are rare and are not kept.
func (c *Cache) getPart(size int64) *[]byte {
	if size == c.cfg.PartSize {
		return c.parts.Get().(*[]byte)
	}
	b := make([]byte, size)
	return &b
}

func (c *Cache) putPart(b *[]byte) {
	if int64(len(*b)) == c.cfg.PartSize {
		c.parts.Put(b)
	}
}
