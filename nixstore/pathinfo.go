package nixstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
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

const pathInfoQuery = `SELECT id, hash, narSize, deriver, sigs, ca FROM ValidPaths WHERE path = ?`

const refsQuery = `SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?`

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
	err = s.withQuerier(ctx, func(q *querier) error {
		for _, p := range paths {
			info, err := q.pathInfo(ctx, p)
			switch {
			case errors.Is(err, ErrNotValid):
				invalid = append(invalid, p)
			case err != nil:
				return err
			default:
				valid = append(valid, info)
			}
		}
		return nil
	})
	return valid, invalid, err
}

// Closure returns the given paths and everything they reference,
// recursively, ordered so that every path comes after all of its
// references (the order a cache must receive them in). It is read in one
// transaction, so it is a consistent snapshot even while Nix registers or
// deletes paths.
func (s *Store) Closure(ctx context.Context, roots []string) ([]*PathInfo, error) {
	var order []*PathInfo
	err := s.withQuerier(ctx, func(q *querier) error {
		infos := make([]*PathInfo, 0, len(roots))
		for _, root := range roots {
			info, err := q.pathInfo(ctx, root)
			if err != nil {
				return err
			}
			infos = append(infos, info)
		}
		var err error
		order, err = q.closure(ctx, infos)
		return err
	})
	return order, err
}

// ClosureOf is Closure for roots already read (QueryValid): only their
// references are read, so a push of many paths with few dependencies reads
// each path once. A reference that is gone by now (the root was deleted,
// then its references) is ErrNotValid.
func (s *Store) ClosureOf(ctx context.Context, roots []*PathInfo) ([]*PathInfo, error) {
	var order []*PathInfo
	err := s.withQuerier(ctx, func(q *querier) (err error) {
		order, err = q.closure(ctx, roots)
		return err
	})
	return order, err
}

// closure walks the references of roots depth-first, post-order, with an
// explicit stack so a long chain cannot exhaust the goroutine stack.
func (q *querier) closure(ctx context.Context, roots []*PathInfo) ([]*PathInfo, error) {
	var order []*PathInfo
	seen := map[string]bool{}
	type frame struct {
		info *PathInfo
		next int
	}
	for _, root := range roots {
		if seen[root.Path] {
			continue
		}
		seen[root.Path] = true
		stack := []frame{{info: root}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(top.info.References) {
				order = append(order, top.info)
				stack = stack[:len(stack)-1]
				continue
			}
			ref := top.info.References[top.next]
			top.next++
			if seen[ref] {
				continue
			}
			seen[ref] = true
			refInfo, err := q.pathInfo(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("reference of %s: %w", top.info.Path, err)
			}
			stack = append(stack, frame{info: refInfo})
		}
	}
	return order, nil
}

// withQuerier runs fn with the path-info statements prepared in one read
// transaction.
func (s *Store) withQuerier(ctx context.Context, fn func(*querier) error) error {
	return s.readTx(ctx, func(tx *sql.Tx) error {
		q, err := newQuerier(ctx, tx)
		if err != nil {
			return err
		}
		defer q.close()
		return fn(q)
	})
}

// querier holds the two prepared statements every path lookup needs.
type querier struct {
	info, refs *sql.Stmt
}

func newQuerier(ctx context.Context, tx *sql.Tx) (*querier, error) {
	info, err := tx.PrepareContext(ctx, pathInfoQuery)
	if err != nil {
		return nil, fmt.Errorf("query nix db: %w", err)
	}
	refs, err := tx.PrepareContext(ctx, refsQuery)
	if err != nil {
		info.Close()
		return nil, fmt.Errorf("query nix db: %w", err)
	}
	return &querier{info: info, refs: refs}, nil
}

func (q *querier) close() {
	q.info.Close()
	q.refs.Close()
}

func (q *querier) pathInfo(ctx context.Context, path string) (*PathInfo, error) {
	info := &PathInfo{Path: path}
	var hash string
	var narSize sql.NullInt64
	var deriver, sigs, ca sql.NullString
	err := q.info.QueryRowContext(ctx, path).Scan(&info.ID, &hash, &narSize, &deriver, &sigs, &ca)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotValid)
	}
	if err != nil {
		return nil, fmt.Errorf("query path info of %s: %w", path, err)
	}
	if info.NarHash, err = parseDBHash(hash); err != nil {
		return nil, fmt.Errorf("query path info of %s: %w", path, err)
	}
	if !narSize.Valid || narSize.Int64 <= 0 {
		return nil, fmt.Errorf("query path info of %s: no NAR size recorded", path)
	}
	info.NarSize = uint64(narSize.Int64)
	info.Deriver = deriver.String
	info.Sigs = strings.Fields(sigs.String)
	info.CA = ca.String

	rows, err := q.refs.QueryContext(ctx, info.ID)
	if err != nil {
		return nil, fmt.Errorf("query references of %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			return nil, fmt.Errorf("query references of %s: %w", path, err)
		}
		info.References = append(info.References, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query references of %s: %w", path, err)
	}
	sort.Strings(info.References)
	return info, nil
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
