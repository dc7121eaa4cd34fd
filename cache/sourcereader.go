package cache

import "io"

// SourceReader remembers the error of the reader it wraps (not io.EOF), so
// a caller that pipes it through other stages (a network upload, a
// decompressor) can tell the source's failure from theirs. The HTTP cache
// aborts a PUT whose source failed; verify tells a cache's read error from
// a NAR that does not decompress.
type SourceReader struct {
	R   io.Reader
	Err error
}

func (s *SourceReader) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF {
		s.Err = err
	}
	return n, err
}
