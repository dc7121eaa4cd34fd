package httpcache

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nixpush/cache"
)

// Listing is WebDAV PROPFIND, as nginx's dav-ext module serves it. That
// module answers only Depth 0 and 1 (Depth infinity is refused with 403,
// as RFC 4918 allows), so a listing walks the tree one collection at a
// time, reading each answer as a stream: nar/ of a large cache is one
// multistatus of tens of thousands of entries, never held in memory.

// propfindBody asks only for what an Object needs.
const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>`

// davResponse is one <D:response> of a multistatus (RFC 4918, 14.24).
type davResponse struct {
	Href     string        `xml:"DAV: href"`
	Status   string        `xml:"DAV: status"` // only when there is no propstat
	Propstat []davPropstat `xml:"DAV: propstat"`
}

type davPropstat struct {
	Status string `xml:"DAV: status"`
	Prop   struct {
		ResourceType struct {
			Collection *struct{} `xml:"DAV: collection"`
		} `xml:"DAV: resourcetype"`
		ContentLength string `xml:"DAV: getcontentlength"`
		LastModified  string `xml:"DAV: getlastmodified"`
	} `xml:"DAV: prop"`
}

// List walks the collections that can hold keys starting with prefix,
// from the deepest one the prefix names ("nar/" for "nar/0a"), and calls
// fn for each object in it. fn runs on List's goroutine, one object at a
// time, while the server's answer streams in.
func (c *Cache) List(ctx context.Context, prefix string, fn func(cache.Object) error) error {
	start := prefix[:strings.LastIndex(prefix, "/")+1] // "" or ends in "/"
	queue := []string{start}
	seen := map[string]bool{start: true} // a symlink loop must not walk forever
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		err := c.propfind(ctx, dir, func(m davMember) error {
			switch {
			case m.isDir:
				// Walk a collection only when keys under it can match.
				if !seen[m.key] && (strings.HasPrefix(m.key, prefix) || strings.HasPrefix(prefix, m.key)) {
					seen[m.key] = true
					queue = append(queue, m.key)
				}
				return nil
			case strings.HasPrefix(m.key, prefix):
				return fn(cache.Object{Key: m.key, Size: m.size, ModTime: m.modTime})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// errStop marks an error from the caller's fn, which propfind returns as
// it is rather than as a malformed answer.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// davMember is an object or a collection found by PROPFIND.
type davMember struct {
	key     string // relative to the cache root: "nar/x.nar.zst", or "nar/" for a collection
	isDir   bool
	size    int64
	modTime time.Time
}

// propfind lists the members of one collection (dir is "" or a key
// ending in "/") with Depth 1. A collection that does not exist has no
// members.
func (c *Cache) propfind(ctx context.Context, dir string, each func(davMember) error) error {
	req, err := c.newRequest(ctx, "PROPFIND", dir, strings.NewReader(propfindBody))
	if err != nil {
		return err
	}
	// A collection's URL ends in "/"; without it some servers redirect.
	req.URL = c.keyURL(dir)
	req.Header.Set("Depth", "1")
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer discard(resp)
	switch code := resp.StatusCode; {
	case code == http.StatusMultiStatus:
	case code == http.StatusNotFound, code == http.StatusGone:
		return nil
	case code == http.StatusMethodNotAllowed, code == http.StatusNotImplemented, code/100 == 2:
		// 2xx other than 207: a static server that took PROPFIND for GET.
		return c.cannotList(req, resp.Status)
	default:
		return c.statusError(req, resp)
	}

	err = decodeMultistatus(resp.Body, func(r *davResponse) error {
		m, ok, err := c.member(req, dir, r)
		if err != nil || !ok {
			return err
		}
		if err := each(m); err != nil {
			return errStop{err}
		}
		return nil
	})
	var stop errStop
	switch {
	case errors.As(err, &stop):
		return stop.err
	case errors.Is(err, errNotMultistatus):
		return c.cannotList(req, resp.Status+" without a WebDAV multistatus")
	case err != nil:
		// A malformed answer or a connection lost mid-body: transient.
		return fmt.Errorf("PROPFIND %s: read multistatus: %w", redacted(req.URL), err)
	}
	return nil
}

// cannotList is the permanent error of a server without WebDAV listing.
func (c *Cache) cannotList(req *http.Request, answer string) error {
	return permanent(fmt.Errorf("list %s: the server does not offer WebDAV listing (PROPFIND %s answered %s): enable PROPFIND (nginx: load ngx_http_dav_ext_module, dav_ext_methods PROPFIND OPTIONS): %w",
		c.name, redacted(req.URL), answer, cache.ErrCannotList))
}

var errNotMultistatus = errors.New("not a WebDAV multistatus")

// decodeMultistatus calls each with every <D:response> as it arrives.
func decodeMultistatus(body io.Reader, each func(*davResponse) error) error {
	d := xml.NewDecoder(body)
	root := true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root {
				return errNotMultistatus
			}
			return nil
		}
		if err != nil {
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root {
			if start.Name != (xml.Name{Space: "DAV:", Local: "multistatus"}) {
				return errNotMultistatus
			}
			root = false
			continue
		}
		if start.Name != (xml.Name{Space: "DAV:", Local: "response"}) {
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		var r davResponse
		if err := d.DecodeElement(&r, &start); err != nil {
			return err
		}
		if err := each(&r); err != nil {
			return err
		}
	}
}

// member reads one response. ok is false for the listed collection
// itself and for entries without properties (a member gone between the
// server's directory read and its stat).
func (c *Cache) member(req *http.Request, dir string, r *davResponse) (m davMember, ok bool, err error) {
	// An href is an absolute path or a whole URL, percent-encoded.
	u, err := req.URL.Parse(strings.TrimSpace(r.Href))
	if err != nil {
		return m, false, fmt.Errorf("bad href %q: %v", r.Href, err)
	}
	root := c.base.Path + "/"
	switch {
	case u.Path == c.base.Path || u.Path == root:
		m.key = ""
	case strings.HasPrefix(u.Path, root):
		m.key = strings.TrimPrefix(u.Path, root)
	default:
		return m, false, fmt.Errorf("href %q is outside the cache", r.Href)
	}
	var ps *davPropstat
	for i := range r.Propstat {
		if code := statusCode(r.Propstat[i].Status); code == 0 || code/100 == 2 {
			ps = &r.Propstat[i]
			break
		}
	}
	if ps == nil {
		return m, false, nil
	}
	m.isDir = ps.Prop.ResourceType.Collection != nil || strings.HasSuffix(m.key, "/")
	if m.isDir && m.key != "" && !strings.HasSuffix(m.key, "/") {
		m.key += "/"
	}
	if m.key == dir || m.key == "" {
		return m, false, nil // the collection listed
	}
	if m.isDir {
		return m, true, nil
	}
	m.size, err = strconv.ParseInt(strings.TrimSpace(ps.Prop.ContentLength), 10, 64)
	if err != nil || m.size < 0 {
		return m, false, fmt.Errorf("%s: bad getcontentlength %q", m.key, ps.Prop.ContentLength)
	}
	m.modTime, err = http.ParseTime(strings.TrimSpace(ps.Prop.LastModified))
	if err != nil {
		return m, false, fmt.Errorf("%s: bad getlastmodified %q", m.key, ps.Prop.LastModified)
	}
	return m, true, nil
}

// statusCode reads "HTTP/1.1 200 OK"; 0 when it cannot.
func statusCode(line string) int {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
