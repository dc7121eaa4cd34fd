package nixstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Registration is one row of the Nix DB's ValidPaths table: a path that
// became valid, with the autoincrement id that orders registrations.
type Registration struct {
	ID         int64
	Path       string
	Registered time.Time // ValidPaths.registrationTime: whole seconds
}

// MaxID returns the highest ValidPaths id ever handed out: the high-water
// mark from which newly valid paths are found. It reads sqlite_sequence
// rather than max(id) so that deleting the newest path cannot move the mark
// backwards.
func (s *Store) MaxID(ctx context.Context) (id int64, err error) {
	err = s.readTx(ctx, func(tx *sql.Tx) (err error) {
		id, err = highWater(ctx, tx)
		return err
	})
	return id, err
}

// highWater is MaxID read in tx.
func highWater(ctx context.Context, tx *sql.Tx) (int64, error) {
	var id sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM sqlite_sequence WHERE name = 'ValidPaths'`).Scan(&id)
	if err == nil && !id.Valid {
		err = tx.QueryRowContext(ctx, `SELECT max(id) FROM ValidPaths`).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("read nix db high-water mark: %w", err)
	}
	return id.Int64, nil
}

// RegisteredAfter returns up to limit valid paths whose id is above mark,
// in registration order.
func (s *Store) RegisteredAfter(ctx context.Context, mark int64, limit int) ([]Registration, error) {
	var regs []Registration
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, path, registrationTime FROM ValidPaths WHERE id > ? ORDER BY id LIMIT ?`, mark, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Registration
			var secs int64
			if err := rows.Scan(&r.ID, &r.Path, &secs); err != nil {
				return err
			}
			r.Registered = time.Unix(secs, 0)
			regs = append(regs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read new registrations from nix db: %w", err)
	}
	return regs, nil
}

// DerivationOutputs returns the output paths the DB records for a .drv:
// those of its DerivationOutputs rows (an input-addressed derivation's
// outputs are known in advance), or else its realisations (a floating
// content-addressed derivation's, known once built, keyed by its hash
// modulo). Nix 2.8.0 runs post-build-hooks with an empty $OUT_PATHS;
// $DRV_PATH and this lookup recover them.
func (s *Store) DerivationOutputs(ctx context.Context, drvPath string) ([]string, error) {
	var outs []string
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		outs, err = queryPaths(ctx, tx, `SELECT o.path FROM DerivationOutputs o
			JOIN ValidPaths v ON v.id = o.drv WHERE v.path = ? ORDER BY o.id`, drvPath)
		return err
	})
	if err != nil || len(outs) > 0 {
		return outs, wrapOutputs(drvPath, err)
	}
	hash, err := s.RealisationHash(drvPath)
	if err != nil {
		return nil, wrapOutputs(drvPath, err)
	}
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		var tables int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master
			WHERE type = 'table' AND name = 'Realisations'`).Scan(&tables); err != nil || tables == 0 {
			return err
		}
		outs, err = queryPaths(ctx, tx, `SELECT DISTINCT v.path FROM Realisations r
			JOIN ValidPaths v ON v.id = r.outputPath WHERE r.drvPath = ? ORDER BY v.path`, hash)
		return err
	})
	return outs, wrapOutputs(drvPath, err)
}

func wrapOutputs(drvPath string, err error) error {
	if err != nil {
		return fmt.Errorf("read outputs of %s: %w", drvPath, err)
	}
	return nil
}

// queryPaths runs a query whose rows are one path each.
func queryPaths(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
