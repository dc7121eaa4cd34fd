package nixstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
)

// PathInfo is what the Nix DB knows about one valid store path.
type PathInfo struct {
	ID         int64    // ValidPaths.id: grows with every registration
	Path       string   // /nix/store/<hash>-<name>
	NarHash    []byte   // sha256 digest of the path's NAR serialisation
	NarSize    uint64   // length of that NAR in bytes
	References []string // full store paths, sorted, possibly including Path itself
	Deriver    string   // full .drv path, or ""
	Sigs       []string // "<keyname>:<base64>" signatures already attached
	CA         string   // content-address assertion, or ""
}

// HasSigFrom reports whether the path carries a signature by the named key.
func (p *PathInfo) HasSigFrom(keyName string) bool {
	for _, s := range p.Sigs {
		if name, _, ok := strings.Cut(s, ":"); ok && name == keyName {
			return true
		}
	}
	return false
}

// QueryPathInfo returns the DB's record of one path, or an error wrapping
// ErrNotValid when the path is not valid.
func (s *Store) QueryPathInfo(ctx context.Context, path string) (*PathInfo, error) {
	infos, err := s.QueryPathInfos(ctx, []string{path})
	if err != nil {
		return nil, err
	}
	return infos[0], nil
}

// QueryPathInfos returns the records of several paths, in the order given,
// read in one transaction. The first invalid path fails the whole call with
// an error wrapping ErrNotValid.
func (s *Store) QueryPathInfos(ctx context.Context, paths []string) ([]*PathInfo, error) {
	valid, invalid, err := s.QueryValid(ctx, paths)
	if err == nil && len(invalid) > 0 {
		err = fmt.Errorf("%s: %w", invalid[0], ErrNotValid)
	}
	return valid, err
}

// QueryValid is QueryPathInfos for paths that may have been deleted: it
// returns the records of the valid ones and lists the others, in one
// transaction.
func (s *Store) QueryValid(ctx context.Context, paths []string) (valid []*PathInfo, invalid []string, err error) {
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		infos, err := readPathInfos(ctx, tx, paths)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if info := infos[p]; info != nil {
				valid = append(valid, info)
			} else {
				invalid = append(invalid, p)
			}
		}
		return nil
	})
	return valid, invalid, err
}

// fill sets what a ValidPaths row says of info.Path.
func (info *PathInfo) fill(hash string, narSize sql.NullInt64, deriver, sigs, ca sql.NullString) error {
	var err error
	if info.NarHash, err = parseDBHash(hash); err != nil {
		return fmt.Errorf("query path info of %s: %w", info.Path, err)
	}
	if !narSize.Valid || narSize.Int64 <= 0 {
		return fmt.Errorf("query path info of %s: no NAR size recorded", info.Path)
	}
	info.NarSize = uint64(narSize.Int64)
	info.Deriver = deriver.String
	info.Sigs = strings.Fields(sigs.String)
	info.CA = ca.String
	return nil
}

// parseDBHash decodes ValidPaths.hash, which Nix stores as
// "sha256:<base16>" (older DBs may hold nix32; Nix itself only writes base16).
func parseDBHash(s string) ([]byte, error) {
	algo, digest, ok := strings.Cut(s, ":")
	if !ok || algo != "sha256" {
		return nil, fmt.Errorf("unsupported NAR hash %q", s)
	}
	b, err := hex.DecodeString(digest)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("malformed NAR hash %q", s)
	}
	return b, nil
}
