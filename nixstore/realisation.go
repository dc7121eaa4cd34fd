package nixstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Realisation records that an output of a content-addressed derivation
// (experimental-features = ca-derivations) was realised as a store path.
// A binary cache serves it as realisations/<ID>.doi, which is how a client
// learns an output path it cannot compute in advance.
type Realisation struct {
	// ID is Nix's DrvOutput: "sha256:<base16 hash modulo of the
	// derivation>!<output name>", e.g. "sha256:a735…!out".
	ID string
	// OutPath is the full store path of the output.
	OutPath string
	// Signatures already attached in the Nix DB (signed by Nix at build
	// time when secret-key-files is set), sorted and without duplicates.
	Signatures []string
	// DependentRealisations maps the ID of each realisation this one was
	// built from (inputs whose outputs it refers to) to its full output path.
	DependentRealisations map[string]string
}

// QueryRealisations returns the realisations whose output is storePath,
// with their dependent realisations, read as Nix 2.8's
// LocalStore::queryRealisation reads them. A CA output built from inputs
// that are themselves CA has two: one for the derivation as written, one
// for the resolved derivation. A store that never used ca-derivations has
// no Realisations table; that gives none, not an error.
func (s *Store) QueryRealisations(ctx context.Context, storePath string) ([]Realisation, error) {
	if s.knownWithoutRealisations() {
		return nil, nil
	}
	var res []Realisation
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var tables int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master
			WHERE type = 'table' AND name IN ('Realisations', 'RealisationsRefs')`).Scan(&tables); err != nil {
			return err
		}
		if tables < 2 {
			s.mu.Lock()
			s.noRealisationsSince = time.Now()
			s.mu.Unlock()
			return nil
		}
		var ids []int64
		var err error
		if res, ids, err = realisationsOf(ctx, tx, storePath); err != nil {
			return err
		}
		for i := range res {
			if res[i].DependentRealisations, err = dependentRealisations(ctx, tx, ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read realisations of %s: %w", storePath, err)
	}
	return res, nil
}

// noRealisationsRecheck is how long a DB found without the tables of
// ca-derivations is taken to have none. Asking costs a transaction per
// path pushed (a tenth of the CPU of pushing a small path), and Nix adds
// them only when ca-derivations is turned on, which a running daemon
// then notices within this time.
const noRealisationsRecheck = time.Minute

// knownWithoutRealisations reports whether the DB was found without the
// tables of ca-derivations less than noRealisationsRecheck ago.
func (s *Store) knownWithoutRealisations() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.noRealisationsSince.IsZero() && time.Since(s.noRealisationsSince) < noRealisationsRecheck
}

// realisationsOf returns the realisations with output storePath and their
// row ids, in the order Nix registered them.
func realisationsOf(ctx context.Context, tx *sql.Tx, storePath string) (res []Realisation, ids []int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT r.id, r.drvPath, r.outputName, r.signatures
		FROM Realisations r JOIN ValidPaths v ON v.id = r.outputPath
		WHERE v.path = ? ORDER BY r.id`, storePath)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                  int64
			drvHash, outputName string
			sigs                sql.NullString
		)
		if err := rows.Scan(&id, &drvHash, &outputName, &sigs); err != nil {
			return nil, nil, err
		}
		res = append(res, Realisation{
			ID:         drvHash + "!" + outputName,
			OutPath:    storePath,
			Signatures: sortedSet(strings.Fields(sigs.String)),
		})
		ids = append(ids, id)
	}
	return res, ids, rows.Err()
}

// dependentRealisations reads RealisationsRefs for one realisation. Like
// Nix (queryRealisationCore_), a dependency's output path is the one the
// first row with its ID records.
func dependentRealisations(ctx context.Context, tx *sql.Tx, referrer int64) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT dep.drvPath, dep.outputName,
			(SELECT v.path FROM Realisations first JOIN ValidPaths v ON v.id = first.outputPath
			 WHERE first.drvPath = dep.drvPath AND first.outputName = dep.outputName
			 ORDER BY first.id LIMIT 1)
		FROM RealisationsRefs ref JOIN Realisations dep ON dep.id = ref.realisationReference
		WHERE ref.referrer = ?`, referrer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	deps := map[string]string{}
	for rows.Next() {
		var drvHash, outputName string
		var outPath sql.NullString
		if err := rows.Scan(&drvHash, &outputName, &outPath); err != nil {
			return nil, err
		}
		if !outPath.Valid {
			return nil, fmt.Errorf("dependent realisation %s!%s has no valid output", drvHash, outputName)
		}
		deps[drvHash+"!"+outputName] = outPath.String
	}
	return deps, rows.Err()
}

// sortedSet sorts and deduplicates, as Nix's StringSet does.
func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
