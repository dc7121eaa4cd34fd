package nixstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
)

// Reading a table by lookups costs a B-tree descent a path; scanning it in
// order costs a little for every row of the store. The scan pays once
// what is read is more than 1/scanShare of the store (and at least
// scanMin paths). Measured on a 40,000-path store, the closure of 20,000:
// the reference graph by lookups of 500 ids 60–90 ms, by scanning Refs
// 35 ms; the records by id 80–100 ms, by scanning ValidPaths 55–70 ms.
var (
	scanShare int64 = 3
	scanMin         = 4096
) // variables for the tests, which make every read a lookup or a scan

// closureByID is Closure in two steps: the reference graph by path id (a
// few bytes a reference, no path strings), then the records of the paths
// it reached, each read once. Reading records while walking, as a walk
// by path must, read most of a large closure twice: by path, then again
// by the scan it turned to (a 20,000-path closure: 0.22–0.32 → 0.16–0.20 s).
func closureByID(ctx context.Context, tx *sql.Tx, roots []int64) ([]*PathInfo, error) {
	refs, err := walkIDs(ctx, tx, roots)
	if err != nil {
		return nil, err
	}
	byID, err := readInfosByID(ctx, tx, refs)
	if err != nil {
		return nil, err
	}
	read := make(map[string]*PathInfo, len(byID))
	for id, info := range byID {
		for _, ref := range refs.of[id] {
			r := byID[ref]
			if r == nil {
				return nil, fmt.Errorf("reference of %s: path id %d: %w", info.Path, ref, ErrNotValid)
			}
			info.References = append(info.References, r.Path)
		}
		sort.Strings(info.References)
		read[info.Path] = info
	}
	rootInfos := make([]*PathInfo, len(roots))
	for i, id := range roots {
		if rootInfos[i] = byID[id]; rootInfos[i] == nil {
			return nil, fmt.Errorf("path id %d: %w", id, ErrNotValid)
		}
	}
	return postOrder(rootInfos, read), nil
}

// idGraph is the part of the reference graph a walk reached: of[id] are
// the references of id. high is the store's high-water mark, once read.
type idGraph struct {
	of   map[int64][]int64
	high int64
}

// scanPays reports whether reading n paths is cheaper by scanning the
// store than by lookups, reading the store's size once.
func (g *idGraph) scanPays(ctx context.Context, tx *sql.Tx, n int) (bool, error) {
	if n < scanMin {
		return false, nil
	}
	if g.high == 0 {
		var err error
		if g.high, err = highWater(ctx, tx); err != nil {
			return false, err
		}
	}
	return int64(n)*scanShare >= g.high, nil // high: at least the number of valid paths
}

// walkIDs reads the references of roots, recursively, a layer at a time:
// by lookups of a chunk of ids, or from the whole Refs table once the walk
// has reached enough of the store.
func walkIDs(ctx context.Context, tx *sql.Tx, roots []int64) (*idGraph, error) {
	g := &idGraph{of: make(map[int64][]int64, len(roots))}
	var layer []int64
	visit := func(from, to int64) {
		g.of[from] = append(g.of[from], to)
		if _, ok := g.of[to]; !ok {
			g.of[to] = nil
			layer = append(layer, to)
		}
	}
	for _, id := range roots {
		if _, ok := g.of[id]; !ok {
			g.of[id] = nil
			layer = append(layer, id)
		}
	}
	var all *refTable
	for len(layer) > 0 {
		from := layer
		layer = nil
		if all == nil {
			scan, err := g.scanPays(ctx, tx, len(g.of))
			if err != nil {
				return nil, err
			}
			if scan {
				if all, err = readRefTable(ctx, tx); err != nil {
					return nil, err
				}
			}
		}
		if all != nil {
			for _, id := range from {
				for _, ref := range all.refs(id) {
					visit(id, ref)
				}
			}
			continue
		}
		if err := readRefsOf(ctx, tx, from, visit); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// readRefsOf calls visit for each reference of the paths ids, a chunk of
// ids per query on Refs' primary key (which holds both columns).
func readRefsOf(ctx context.Context, tx *sql.Tx, ids []int64, visit func(from, to int64)) error {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	err := eachRowIn(ctx, tx, `SELECT referrer, reference FROM Refs WHERE referrer IN `, args, func(rows *sql.Rows) error {
		var from, to int64
		if err := rows.Scan(&from, &to); err != nil {
			return err
		}
		visit(from, to)
		return nil
	})
	if err != nil {
		return fmt.Errorf("query references: %w", err)
	}
	return nil
}

// readInfosByID reads the records of the paths of g, by id lookups or in
// one pass over ValidPaths.
func readInfosByID(ctx context.Context, tx *sql.Tx, g *idGraph) (map[int64]*PathInfo, error) {
	scan, err := g.scanPays(ctx, tx, len(g.of))
	if err != nil {
		return nil, err
	}
	var byID map[int64]*PathInfo
	if scan {
		keep := func(id int64) bool { _, ok := g.of[id]; return ok }
		byID, err = queryInfos(ctx, tx, "", nil, keep, len(g.of))
	} else {
		byID, err = readInfosIn(ctx, tx, g)
	}
	return byID, err
}

// readInfosIn reads the records of the paths of g by id, a chunk per query.
func readInfosIn(ctx context.Context, tx *sql.Tx, g *idGraph) (map[int64]*PathInfo, error) {
	byID := make(map[int64]*PathInfo, len(g.of))
	ids := make([]any, 0, len(g.of))
	for id := range g.of {
		ids = append(ids, id)
	}
	for chunk := range slices.Chunk(ids, readChunk) {
		infos, err := queryInfos(ctx, tx, `WHERE id IN (`+inList(len(chunk))+`)`, chunk, nil, len(chunk))
		if err != nil {
			return nil, err
		}
		for id, info := range infos {
			byID[id] = info
		}
	}
	return byID, nil
}

// refTable is the Refs table in memory: the references of from[i] are
// to[start[i]:start[i+1]].
type refTable struct {
	from  []int64 // ascending
	start []int
	to    []int64
}

func (t *refTable) refs(id int64) []int64 {
	i, ok := slices.BinarySearch(t.from, id)
	if !ok {
		return nil
	}
	return t.to[t.start[i]:t.start[i+1]]
}

// readRefTable reads Refs in referrer order (its primary key's index,
// which holds both columns: one pass over one index).
func readRefTable(ctx context.Context, tx *sql.Tx) (*refTable, error) {
	rows, err := tx.QueryContext(ctx, `SELECT referrer, reference FROM Refs ORDER BY referrer`)
	if err != nil {
		return nil, fmt.Errorf("query references: %w", err)
	}
	defer rows.Close()
	t := &refTable{}
	for rows.Next() {
		var from, to int64
		if err := rows.Scan(&from, &to); err != nil {
			return nil, fmt.Errorf("query references: %w", err)
		}
		if n := len(t.from); n == 0 || t.from[n-1] != from {
			t.from = append(t.from, from)
			t.start = append(t.start, len(t.to))
		}
		t.to = append(t.to, to)
	}
	t.start = append(t.start, len(t.to))
	return t, rows.Err()
}
