package nixstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Closure returns the given paths and everything they reference,
// recursively, ordered so that every path comes after all of its
// references (the order a cache must receive them in). It is read in one
// transaction, so it is a consistent snapshot even while Nix registers or
// deletes paths.
func (s *Store) Closure(ctx context.Context, roots []string) ([]*PathInfo, error) {
	var order []*PathInfo
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		ids, err := readIDs(ctx, tx, roots)
		if err != nil {
			return err
		}
		order, err = closureByID(ctx, tx, ids)
		return err
	})
	return order, err
}

// readIDs reads the ids of paths, in their order; one that is not valid
// is ErrNotValid.
func readIDs(ctx context.Context, tx *sql.Tx, paths []string) ([]int64, error) {
	args := make([]any, len(paths))
	for i, p := range paths {
		args[i] = p
	}
	byPath := make(map[string]int64, len(paths))
	err := eachRowIn(ctx, tx, `SELECT id, path FROM ValidPaths WHERE path IN `, args, func(rows *sql.Rows) error {
		var id int64
		var p string
		if err := rows.Scan(&id, &p); err != nil {
			return err
		}
		byPath[p] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query path ids: %w", err)
	}
	ids := make([]int64, len(paths))
	for i, p := range paths {
		id, ok := byPath[p]
		if !ok {
			return nil, fmt.Errorf("%s: %w", p, ErrNotValid)
		}
		ids[i] = id
	}
	return ids, nil
}

// eachRowIn runs query, which ends in "IN ", with a chunk of args at a
// time (the list's parentheses are added), and calls scan for each row.
func eachRowIn(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	for chunk := range slices.Chunk(args, readChunk) {
		rows, err := tx.QueryContext(ctx, query+`(`+inList(len(chunk))+`)`, chunk...)
		if err != nil {
			return err
		}
		for rows.Next() && err == nil {
			err = scan(rows)
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ClosureOf is Closure for roots already read (QueryValid), leaving out
// the references known reports (and what only they reference): a push
// that has dealt with a path already does not read its closure again.
// known is asked once per layer of the walk. A reference that is gone by
// now (the root was deleted, then its references) is ErrNotValid.
func (s *Store) ClosureOf(ctx context.Context, roots []*PathInfo, known func(paths []string) map[string]bool) ([]*PathInfo, error) {
	var order []*PathInfo
	err := s.readTx(ctx, func(tx *sql.Tx) (err error) {
		order, err = closure(ctx, tx, roots, known)
		return err
	})
	return order, err
}

// closure reads the references of roots breadth first, a whole layer in
// a few queries (one per chunk of paths, not two per path), asking known
// which to leave out, then orders what it read depth-first, post-order.
// (Without paths to leave out, Closure's walk by id is cheaper.)
func closure(ctx context.Context, tx *sql.Tx, roots []*PathInfo, known func([]string) map[string]bool) ([]*PathInfo, error) {
	read := make(map[string]*PathInfo, len(roots))
	referrer := map[string]string{} // a path's first referrer, for errors
	for _, r := range roots {
		read[r.Path] = r
	}
	for layer := roots; len(layer) > 0; {
		var want []string
		for _, info := range layer {
			for _, ref := range info.References {
				if _, ok := read[ref]; ok {
					continue
				}
				if _, ok := referrer[ref]; !ok {
					referrer[ref] = info.Path
					want = append(want, ref)
				}
			}
		}
		if known != nil && len(want) > 0 {
			skip := known(want)
			want = slices.DeleteFunc(want, func(p string) bool { return skip[p] })
		}
		infos, err := readPathInfos(ctx, tx, want)
		if err != nil {
			return nil, err
		}
		layer = layer[:0:0]
		for _, p := range want {
			info := infos[p]
			if info == nil {
				return nil, fmt.Errorf("reference of %s: %s: %w", referrer[p], p, ErrNotValid)
			}
			read[p] = info
			layer = append(layer, info)
		}
	}
	return postOrder(roots, read), nil
}

// postOrder lists the paths of read reachable from roots, each after all
// of its references in read, with an explicit stack so a long chain
// cannot exhaust the goroutine stack.
func postOrder(roots []*PathInfo, read map[string]*PathInfo) []*PathInfo {
	order := make([]*PathInfo, 0, len(read))
	seen := make(map[string]bool, len(read))
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
			ref := read[top.info.References[top.next]]
			top.next++
			if ref == nil || seen[ref.Path] {
				continue // known: left out
			}
			seen[ref.Path] = true
			stack = append(stack, frame{info: ref})
		}
	}
	return order
}

// readChunk bounds the paths of one query, well below SQLite's limit on
// bound parameters.
const readChunk = 500

// readPathInfos reads the records of paths, a chunk per two queries; a
// path the DB does not know is absent from the map.
func readPathInfos(ctx context.Context, tx *sql.Tx, paths []string) (map[string]*PathInfo, error) {
	out := make(map[string]*PathInfo, len(paths))
	for start := 0; start < len(paths); start += readChunk {
		chunk := paths[start:min(start+readChunk, len(paths))]
		byID, err := readChunkInfos(ctx, tx, chunk)
		if err != nil {
			return nil, err
		}
		if err := readChunkRefs(ctx, tx, byID); err != nil {
			return nil, err
		}
		for _, info := range byID {
			sort.Strings(info.References)
			out[info.Path] = info
		}
	}
	return out, nil
}

func inList(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func readChunkInfos(ctx context.Context, tx *sql.Tx, paths []string) (map[int64]*PathInfo, error) {
	args := make([]any, len(paths))
	for i, p := range paths {
		args[i] = p
	}
	return queryInfos(ctx, tx, `WHERE path IN (`+inList(len(paths))+`)`, args, nil, len(paths))
}

// queryInfos reads the ValidPaths rows that where selects, keyed by id;
// with keep, only the rows whose id it keeps are parsed and returned.
func queryInfos(ctx context.Context, tx *sql.Tx, where string, args []any, keep func(id int64) bool, size int) (map[int64]*PathInfo, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+pathCols+` FROM ValidPaths `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query path infos: %w", err)
	}
	defer rows.Close()
	byID := make(map[int64]*PathInfo, size)
	var r pathRow
	for rows.Next() {
		if err := r.scan(rows); err != nil {
			return nil, err
		}
		if keep != nil && !keep(r.id) {
			continue
		}
		info, err := r.pathInfo()
		if err != nil {
			return nil, err
		}
		byID[info.ID] = info
	}
	return byID, rows.Err()
}

// pathCols are the columns of ValidPaths a pathRow holds.
const pathCols = `id, path, hash, narSize, deriver, sigs, ca`

// pathRow is a row of pathCols as scanned, before its fields are parsed
// (a scan of the whole table parses only the rows it keeps).
type pathRow struct {
	id                int64
	path, hash        string
	narSize           sql.NullInt64
	deriver, sigs, ca sql.NullString
}

func (r *pathRow) scan(rows *sql.Rows) error {
	if err := rows.Scan(&r.id, &r.path, &r.hash, &r.narSize, &r.deriver, &r.sigs, &r.ca); err != nil {
		return fmt.Errorf("query path infos: %w", err)
	}
	return nil
}

func (r *pathRow) pathInfo() (*PathInfo, error) {
	info := &PathInfo{ID: r.id, Path: r.path}
	return info, info.fill(r.hash, r.narSize, r.deriver, r.sigs, r.ca)
}

func readChunkRefs(ctx context.Context, tx *sql.Tx, byID map[int64]*PathInfo) error {
	args := make([]any, 0, len(byID))
	for id := range byID {
		args = append(args, id)
	}
	err := eachRowIn(ctx, tx, `SELECT r.referrer, v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference
		WHERE r.referrer IN `, args, func(rows *sql.Rows) error {
		var id int64
		var ref string
		if err := rows.Scan(&id, &ref); err != nil {
			return err
		}
		byID[id].References = append(byID[id].References, ref)
		return nil
	})
	if err != nil {
		return fmt.Errorf("query references: %w", err)
	}
	return nil
}
