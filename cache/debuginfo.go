package cache

import "path"

// Nix's index-debug-info=1: for each ELF debug file a path holds under
// lib/debug/.build-id, a debuginfo/<build ID>.debug object says which
// NAR holds it and where, so that debuginfod servers and dwarffs find
// the debug info of a crashing binary from its build ID alone. Nix 2.8
// to 2.35 write it the same way (BinaryCacheStore::addToStoreCommon).

// TypeDebugInfo is the content type Nix gives a debuginfo object.
const TypeDebugInfo = "application/json"

// DebugInfoKey names the debuginfo object of a debug file (member, as
// "lib/debug/.build-id/02/623e….debug"): "debuginfo/02623e….debug".
func DebugInfoKey(member string) string {
	dir, file := path.Split(member)
	return "debuginfo/" + path.Base(dir) + file
}

// DebugInfoDoc is the debuginfo object of member in the NAR at narKey:
// compact JSON, keys sorted, as Nix writes it.
func DebugInfoDoc(narKey, member string) ([]byte, error) {
	return marshalNixJSON(struct {
		Archive string `json:"archive"`
		Member  string `json:"member"`
	}{"../" + narKey, member})
}
