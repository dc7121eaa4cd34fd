package nixstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
)

// A walk that has read more than 1/scanShare of the store's paths (and at
// least scanMin) reads the rest by scanning the DB's tables in order:
// looking paths up one by one costs two random B-tree descents a path,
// and once the DB outgrows SQLite's page cache each is a read from the
// kernel; a scan reads every page once. Measured on a 100,000-path store
// whose closure is the whole store: 2.3–3.2 s by lookups, 1.0 s when the
// walk turns to the scan at an eighth (the scan alone: 0.25 s).
const scanShare = 8

var scanMin = 4096 // a variable for the tests, which make every walk a walk

// closureByScan is closure without known, in two scans: the reference
// graph (ids only, a few bytes a reference), walked in memory, then the
// paths, keeping those of the closure.
func closureByScan(ctx context.Context, tx *sql.Tx, roots []*PathInfo) ([]*PathInfo, error) {
	g, err := readRefGraph(ctx, tx)
	if err != nil {
		return nil, err
	}
	in := make(map[int64]bool)
	stack := make([]int64, 0, len(roots))
	for _, r := range roots {
		if !in[r.ID] {
			in[r.ID] = true
			stack = append(stack, r.ID)
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, ref := range g.refs(id) {
			if !in[ref] {
				in[ref] = true
				stack = append(stack, ref)
			}
		}
	}
	byID, err := readInfosIn(ctx, tx, in)
	if err != nil {
		return nil, err
	}
	for _, r := range roots {
		if byID[r.ID] == nil {
			return nil, fmt.Errorf("%s: %w", r.Path, ErrNotValid)
		}
	}
	read := make(map[string]*PathInfo, len(byID))
	for id, info := range byID {
		for _, ref := range g.refs(id) {
			r := byID[ref]
			if r == nil {
				return nil, fmt.Errorf("reference of %s: path id %d: %w", info.Path, ref, ErrNotValid)
			}
			info.References = append(info.References, r.Path)
		}
		sort.Strings(info.References)
		read[info.Path] = info
	}
	return postOrder(roots, read), nil
}

// refGraph is the Refs table in memory: the references of from[i] are
// to[start[i]:start[i+1]].
type refGraph struct {
	from  []int64 // ascending
	start []int
	to    []int64
}

func (g *refGraph) refs(id int64) []int64 {
	i, ok := slices.BinarySearch(g.from, id)
	if !ok {
		return nil
	}
	return g.to[g.start[i]:g.start[i+1]]
}

// readRefGraph reads Refs in referrer order (its primary key's index,
// which holds both columns: one pass over one index).
func readRefGraph(ctx context.Context, tx *sql.Tx) (*refGraph, error) {
	rows, err := tx.QueryContext(ctx, `SELECT referrer, reference FROM Refs ORDER BY referrer`)
	if err != nil {
		return nil, fmt.Errorf("query references: %w", err)
	}
	defer rows.Close()
	g := &refGraph{}
	for rows.Next() {
		var from, to int64
		if err := rows.Scan(&from, &to); err != nil {
			return nil, fmt.Errorf("query references: %w", err)
		}
		if n := len(g.from); n == 0 || g.from[n-1] != from {
			g.from = append(g.from, from)
			g.start = append(g.start, len(g.to))
		}
		g.to = append(g.to, to)
	}
	g.start = append(g.start, len(g.to))
	return g, rows.Err()
}

// readInfosIn reads the records of the paths whose ids are in ids, in one
// pass over ValidPaths.
func readInfosIn(ctx context.Context, tx *sql.Tx, ids map[int64]bool) (map[int64]*PathInfo, error) {
	return queryInfos(ctx, tx, "", nil, func(id int64) bool { return ids[id] }, len(ids))
}
