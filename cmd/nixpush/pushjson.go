package main

import (
	"encoding/json"
	"io"

	"nixpush/cache"
	"nixpush/pipeline"
)

// pushSummary is one cache's line of push --json: what the push did and
// what it cost in requests, so a fleet can see what a push costs.
type pushSummary struct {
	Cache      string          `json:"cache"`
	Pushed     int64           `json:"pushed"`     // paths whose narinfo this push wrote
	Bytes      int64           `json:"bytes"`      // compressed NAR bytes of those
	NARBytes   int64           `json:"nar_bytes"`  // uncompressed
	Present    int             `json:"present"`    // found in the cache (or the memo)
	Upstream   int             `json:"upstream"`   // left to an upstream cache
	Filtered   int             `json:"filtered"`   // .drv or excluded
	Unfinished int             `json:"unfinished"` // pending or failed at the end
	Requests   *cache.Requests `json:"requests"`   // sent to the cache, by kind; null for a directory
}

// printPushJSON prints one summary per cache, as a JSON array.
func printPushJSON(w io.Writer, p *pipeline.Pipeline, results []pipeline.PushResult) error {
	out := make([]pushSummary, 0, len(p.Lanes))
	for i, l := range p.Lanes {
		s := pushSummary{Cache: l.URL.Identity()}
		if i < len(results) {
			r := results[i]
			s.Present, s.Upstream, s.Filtered, s.Unfinished = r.Plan.Present, r.Plan.Upstream, r.Plan.Filtered, len(r.Unfinished)
		}
		st := &l.Uploader.Stats
		s.Pushed, s.Bytes, s.NARBytes = st.Paths.Load(), st.Bytes.Load(), st.NARBytes.Load()
		if req, ok := cache.RequestsOf(l.Cache); ok {
			s.Requests = &req
		}
		out = append(out, s)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
