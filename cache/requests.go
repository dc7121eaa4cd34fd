package cache

import (
	"net/http"
	"net/url"
	"sync/atomic"
)

// Request kinds, as a server bills them: AWS charges PUT, POST and LIST
// requests at one price and GET and HEAD at a twelfth of it; DELETE is
// free. A part of a multipart upload is a PUT of its own, counted apart
// so that a NAR's parts show.
const (
	KindPut    = "put"    // an object written in one request
	KindPart   = "part"   // one part of a multipart upload
	KindPost   = "post"   // starting or completing a multipart upload
	KindGet    = "get"    // an object read
	KindHead   = "head"   // an existence check
	KindList   = "list"   // a listing page (ListObjectsV2, ListParts, PROPFIND)
	KindDelete = "delete" // a delete, of one object, a batch, or an upload
)

// Kinds lists every kind, in the order reports show them.
var Kinds = []string{KindPut, KindPart, KindPost, KindGet, KindHead, KindList, KindDelete}

// Requests is what a backend has sent: requests by kind (throttled ones
// and failures included: each is a request the server saw and may bill),
// how many answers said "slow down", and the bound its Limiter holds now.
type Requests struct {
	ByKind    map[string]int64 `json:"by_kind"`
	Throttled int64            `json:"throttled"`
	Limit     int              `json:"limit,omitempty"` // 0: no limiter
}

// Total is the number of requests of every kind.
func (r Requests) Total() int64 {
	var n int64
	for _, v := range r.ByKind {
		n += v
	}
	return n
}

// RequestCounter counts requests by kind. The zero value is ready; it is
// safe for concurrent use.
type RequestCounter struct {
	counts    [7]atomic.Int64 // in the order of Kinds
	throttled atomic.Int64
}

// Count records one request of kind.
func (c *RequestCounter) Count(kind string) {
	for i, k := range Kinds {
		if k == kind {
			c.counts[i].Add(1)
			return
		}
	}
}

// CountThrottled records an answer that said "slow down".
func (c *RequestCounter) CountThrottled() { c.throttled.Add(1) }

// Snapshot is the counts so far.
func (c *RequestCounter) Snapshot() Requests {
	r := Requests{ByKind: make(map[string]int64, len(Kinds)), Throttled: c.throttled.Load()}
	for i, k := range Kinds {
		r.ByKind[k] = c.counts[i].Load()
	}
	return r
}

// RequestKind names the kind of an HTTP request to an S3 or WebDAV
// server from its method and query: S3's listings are GETs with
// list-type (ListObjectsV2), uploads (ListMultipartUploads) or uploadId
// (ListParts), whatever the addressing style.
func RequestKind(method string, u *url.URL) string {
	q := u.Query()
	switch method {
	case http.MethodPut:
		if q.Has("partNumber") && q.Has("uploadId") {
			return KindPart
		}
		return KindPut
	case http.MethodPost:
		if q.Has("delete") {
			return KindDelete
		}
		return KindPost
	case http.MethodHead:
		return KindHead
	case http.MethodDelete:
		return KindDelete
	case "PROPFIND":
		return KindList
	case http.MethodGet:
		if q.Has("list-type") || q.Has("uploads") || q.Has("uploadId") {
			return KindList
		}
	}
	return KindGet
}

// Counted is implemented by backends that count their requests.
type Counted interface {
	Requests() Requests
}

// RequestsOf is what c's backend has sent; ok is false for a backend
// that does not count (a directory).
func RequestsOf(c Cache) (Requests, bool) {
	if v, ok := find[Counted](c); ok {
		return v.Requests(), true
	}
	return Requests{}, false
}
