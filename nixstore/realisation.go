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
	// ResolvedDrv is the derivation this realisation is of, when the
	// local store has it and it is resolved (it has no input
	// derivations): Nix 2.35 keys its build trace by it. A CA derivation
	// with CA inputs is built by building its resolved form, and the
	// output's deriver is that form: this is how it is found.
	ResolvedDrv string

	rowID int64 // Realisations.id
}

// QueryRealisations returns the realisations whose output is storePath
// (QueryRealisationsOf for one path).
func (s *Store) QueryRealisations(ctx context.Context, storePath string) ([]Realisation, error) {
	rs, err := s.QueryRealisationsOf(ctx, []string{storePath})
	return rs[storePath], err
}

// QueryRealisationsOf returns the realisations whose output is one of
// paths, by output, with their dependent realisations, read as Nix 2.8's
// LocalStore::queryRealisation reads them, and the resolved derivation
// of each when known. A CA output built from inputs that are themselves
// CA has two: one for the derivation as written, one for the resolved
// derivation. A store that never used ca-derivations has no Realisations
// table; that gives none, not an error.
func (s *Store) QueryRealisationsOf(ctx context.Context, paths []string) (map[string][]Realisation, error) {
	res := map[string][]Realisation{}
	if s.knownWithoutRealisations() || len(paths) == 0 {
		return res, nil
	}
	derivers := map[string]string{} // output → its deriver
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
		for rest := paths; len(rest) > 0; {
			n := min(len(rest), 500)
			if err := realisationsOf(ctx, tx, rest[:n], res, derivers); err != nil {
				return err
			}
			rest = rest[n:]
		}
		for out, rs := range res {
			for i := range rs {
				deps, err := dependentRealisations(ctx, tx, rs[i].rowID)
				if err != nil {
					return err
				}
				res[out][i].DependentRealisations = deps
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read realisations: %w", err)
	}
	for out, rs := range res {
		s.findResolvedDrv(rs, derivers[out])
	}
	return res, nil
}

// QueryAllRealisations returns every realisation of the store, by
// output (QueryRealisationsOf for every output that has one).
func (s *Store) QueryAllRealisations(ctx context.Context) (map[string][]Realisation, error) {
	if s.knownWithoutRealisations() {
		return map[string][]Realisation{}, nil
	}
	var outs []string
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var tables int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master
			WHERE type = 'table' AND name = 'Realisations'`).Scan(&tables); err != nil || tables == 0 {
			return err
		}
		var err error
		outs, err = queryPaths(ctx, tx, `SELECT DISTINCT v.path FROM Realisations r
			JOIN ValidPaths v ON v.id = r.outputPath`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read realisations: %w", err)
	}
	return s.QueryRealisationsOf(ctx, outs)
}

// findResolvedDrv sets ResolvedDrv on the realisation of rs that is of
// deriver, when deriver is resolved. A .drv that cannot be read (gone,
// never there) leaves it unset: nothing is known, nothing is wrong.
func (s *Store) findResolvedDrv(rs []Realisation, deriver string) {
	if deriver == "" {
		return
	}
	d, err := s.ReadDerivation(deriver)
	if err != nil || len(d.InputDrvs) > 0 {
		return
	}
	h, err := s.hashModulo(d, true, map[string]string{})
	if err != nil {
		return
	}
	for i, r := range rs {
		if hash, _, _ := strings.Cut(r.ID, "!"); hash == "sha256:"+h {
			rs[i].ResolvedDrv = deriver
		}
	}
}

// OutputName is the output a realisation is of ("out").
func (r Realisation) OutputName() string {
	_, name, _ := strings.Cut(r.ID, "!")
	return name
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

// realisationsOf adds the realisations whose output is one of paths to
// res, in the order Nix registered them, and each output's deriver.
func realisationsOf(ctx context.Context, tx *sql.Tx, paths []string, res map[string][]Realisation, derivers map[string]string) error {
	args := make([]any, len(paths))
	for i, p := range paths {
		args[i] = p
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.id, r.drvPath, r.outputName, r.signatures, v.path, v.deriver
		FROM Realisations r JOIN ValidPaths v ON v.id = r.outputPath
		WHERE v.path IN (`+inList(len(paths))+`) ORDER BY r.id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                           int64
			drvHash, outputName, outPath string
			sigs, deriver                sql.NullString
		)
		if err := rows.Scan(&id, &drvHash, &outputName, &sigs, &outPath, &deriver); err != nil {
			return err
		}
		res[outPath] = append(res[outPath], Realisation{
			ID:         drvHash + "!" + outputName,
			OutPath:    outPath,
			Signatures: sortedSet(strings.Fields(sigs.String)),
			rowID:      id,
		})
		derivers[outPath] = deriver.String
	}
	return rows.Err()
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
