package nixstore

import "strconv"

// narListing builds the JSON of a NAR listing (<hash>.ls in a binary cache)
// while the NAR encoder walks the tree. Nix 2.8 writes it with its own
// JSON writer (libutil/json.cc) from a NarAccessor, whose directory
// entries are a std::map: sorted bytewise, the order the NAR itself uses.
// So the JSON can be streamed in walk order, with no tree in memory:
//
//	{"version":1,"root":NODE}
//	NODE = {"type":"regular","size":N[,"executable":true],"narOffset":OFFSET}
//	     | {"type":"symlink","target":"..."}
//	     | {"type":"directory","entries":{"name":NODE,...}}
//
// narOffset is where the file's bytes start in the NAR, after their length.
// Every method is a no-op on a nil *narListing (no listing wanted).
type narListing struct {
	buf []byte
}

const listingHead = `{"version":1,"root":`

func (l *narListing) regular(size int64, executable bool, narOffset uint64) {
	if l == nil {
		return
	}
	l.start()
	l.buf = append(l.buf, `{"type":"regular","size":`...)
	l.buf = strconv.AppendInt(l.buf, size, 10)
	if executable {
		l.buf = append(l.buf, `,"executable":true`...)
	}
	if narOffset != 0 { // as Nix: "if (st.narOffset)"; never 0 in a real NAR
		l.buf = append(l.buf, `,"narOffset":`...)
		l.buf = strconv.AppendUint(l.buf, narOffset, 10)
	}
	l.buf = append(l.buf, '}')
}

func (l *narListing) symlink(target string) {
	if l == nil {
		return
	}
	l.start()
	l.buf = append(l.buf, `{"type":"symlink","target":`...)
	l.buf = appendNixJSONString(l.buf, target)
	l.buf = append(l.buf, '}')
}

func (l *narListing) openDir() {
	if l == nil {
		return
	}
	l.start()
	l.buf = append(l.buf, `{"type":"directory","entries":{`...)
}

// entry starts the i-th (from 0) entry of the open directory; its node
// follows.
func (l *narListing) entry(i int, name string) {
	if l == nil {
		return
	}
	if i > 0 {
		l.buf = append(l.buf, ',')
	}
	l.buf = appendNixJSONString(l.buf, name)
	l.buf = append(l.buf, ':')
}

func (l *narListing) closeDir() {
	if l == nil {
		return
	}
	l.buf = append(l.buf, "}}"...)
}

// start writes the head before the root node.
func (l *narListing) start() {
	if len(l.buf) == 0 {
		l.buf = append(l.buf, listingHead...)
	}
}

// finish closes the document and returns it.
func (l *narListing) finish() []byte {
	return append(l.buf, '}')
}

// appendNixJSONString quotes s as Nix 2.8's toJSON does, which is not what
// encoding/json does: only '"', '\\' and bytes below 0x20 are escaped
// (\n \r \t by name, the rest as \u00xx in lower-case hex); everything
// else, invalid UTF-8 and DEL included, is copied as is.
func appendNixJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
