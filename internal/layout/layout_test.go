// Package layout holds the test that keeps docs/architecture.md true: every
// package in the module is in its table, and imports only what its row
// allows.
package layout

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rule is one row of the table: the packages it names and what they may
// import within the module ("any", "any product package", or a list).
type rule struct {
	pkgs    []string
	allowed map[string]bool
	any     bool // "any" or "any product package"
	product bool // only product packages (not the workshop)
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readRules parses the table of docs/architecture.md.
func readRules(t *testing.T, root string) map[string]rule {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules := map[string]rule{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) != 5 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		r := rule{allowed: map[string]bool{}}
		for _, m := range backticked.FindAllStringSubmatch(cols[1], -1) {
			r.pkgs = append(r.pkgs, m[1])
		}
		imports := strings.TrimSpace(cols[3])
		switch imports {
		case "any":
			r.any = true
		case "any product package":
			r.any, r.product = true, true
		case "—":
		default:
			for _, p := range strings.Split(imports, ",") {
				r.allowed[strings.TrimSpace(p)] = true
			}
		}
		for _, p := range r.pkgs {
			rules[p] = r
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rules
}

// workshop reports the packages only tests, benchmarks and faults use.
func workshop(pkg string) bool {
	return strings.HasPrefix(pkg, "tools/") || strings.HasPrefix(pkg, "internal/") || pkg == "cache/cachetest"
}

func TestImportsFollowTheArchitecture(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	rules := readRules(t, root)
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, "nixpush/")
		if pkg == "internal/layout" {
			continue
		}
		r, ok := rules[pkg]
		if !ok {
			t.Errorf("%s is not in the table of docs/architecture.md", pkg)
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, "nixpush/")
			if !ok {
				continue
			}
			switch {
			case !workshop(pkg) && workshop(dep):
				t.Errorf("%s imports the workshop package %s", pkg, dep)
			case r.any && (!r.product || !workshop(dep)):
			case !r.allowed[dep]:
				t.Errorf("%s imports %s, which docs/architecture.md does not allow", pkg, dep)
			}
		}
	}
}
