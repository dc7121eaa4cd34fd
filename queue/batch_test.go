package queue

import (
	"database/sql"
	"strings"
	"testing"
)

// TestBatchPlans: every batch statement reads the JSON list and finds its
// rows by path (through its hash) or id. Walking a state index instead (what SQLite chose
// for Settle before "+state") reads every done row for every batch.
func TestBatchPlans(t *testing.T) {
	q, _ := openTest(t)
	stmts := map[string]string{
		"claimIDs": claimIDs, "unlinkItems": unlinkItems, "insertPendingSQL": insertPendingSQL,
		"notFresh": notFresh, "resetSQL": resetSQL, "linkScope": linkScope,
	}
	for state, set := range outcomeSQL {
		stmts["settleSQL("+string(state)+")"] = settleSQL(set)
	}
	byPath := map[string]bool{"insertPendingSQL": true, "notFresh": true, "linkScope": true}
	for name, stmt := range stmts {
		plan := queryPlan(t, q.w, stmt, "[]", "[]", 1, "t")
		all := strings.Join(plan, "; ")
		if !strings.Contains(all, "json_each") {
			t.Errorf("%s does not read its list: %s", name, all)
		}
		for _, step := range plan {
			if strings.Contains(step, "items_state") || strings.HasPrefix(step, "SCAN items") {
				t.Errorf("%s walks items instead of finding rows by path or id: %s", name, all)
			}
		}
		// A path is found through its hash's index: an index of the
		// paths' text outgrew the page cache (pathhash.go).
		if byPath[name] && !strings.Contains(all, "USING INDEX items_path_hash") {
			t.Errorf("%s does not find its rows by path_hash: %s", name, all)
		}
		// Settle finds a claimed row by its id: by path, each outcome
		// descended the path index (random pages, once a large queue's
		// index outgrows the page cache).
		if strings.HasPrefix(name, "settleSQL") && !strings.HasPrefix(plan[1], "SEARCH items USING INTEGER PRIMARY KEY") {
			t.Errorf("%s does not find its rows by id: %s", name, all)
		}
	}
}

// queryPlan is what EXPLAIN QUERY PLAN says of stmt with args, a step an
// element.
func queryPlan(t *testing.T, db *sql.DB, stmt string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+stmt, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", stmt, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}
