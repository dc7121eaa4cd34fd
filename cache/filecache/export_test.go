package filecache

// The seams TestWriteWays stands in for: a filesystem without O_TMPFILE,
// a kernel that refuses linkat(AT_EMPTY_PATH).
var (
	OpenUnnamed     = &openUnnamed
	EmptyPathDenied = &emptyPathDenied
)
