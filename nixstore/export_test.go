package nixstore

import (
	"context"
	"database/sql"
)

// WalkOnly makes every closure walk look paths up one by one, as a small
// one does, until the returned func is called.
func WalkOnly() (restore func()) {
	old := scanMin
	scanMin = int(^uint(0) >> 1)
	return func() { scanMin = old }
}

// ClosureByScan is Closure read by scanning, whatever its size.
func (s *Store) ClosureByScan(ctx context.Context, roots []string) (order []*PathInfo, err error) {
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		rootInfos, err := readRoots(ctx, tx, roots)
		if err != nil {
			return err
		}
		order, err = closureByScan(ctx, tx, rootInfos)
		return err
	})
	return order, err
}
