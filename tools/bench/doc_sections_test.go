package main

import (
	"strings"
	"testing"
	"time"
)

// oldDoc is the first format: one run-info list for the whole file.
const oldDoc = `# Benchmarks

Written by the bench program (` + "`bench/`" + `); do not edit by hand, re-run it.

- command: ` + "`go run ./bench -runs 3 -write`" + `
- date: 2026-11-26 11:52 UTC
- runs: 3 per tool

## Push to a file:// cache: nixpush vs nix copy

Each tool puts the same paths.

### One large tree

| tool | wall |
|---|--:|
| nixpush push | 1.27 s |

### Notes

- large-tree: fine.
`

func testReport(title, body string) *report {
	return &report{Title: title, Intro: body, Command: "go run ./bench -suite x", Date: time.Unix(0, 0),
		LoadStart: "1.00 1.00 1.00", LoadEnd: "2.00 2.00 2.00"}
}

func TestMergeDocKeepsOtherSections(t *testing.T) {
	daemon := testReport("Detection latency", "first run")
	doc := mergeDoc(oldDoc, []*report{daemon})

	pre, secs := splitDoc(doc)
	if !strings.HasPrefix(pre, "# Benchmarks\n") || strings.Contains(pre, "- command:") {
		t.Errorf("preamble = %q, want the new one without run info", pre)
	}
	if len(secs) != 2 || secs[0].Heading != "## Push to a file:// cache: nixpush vs nix copy" || secs[1].Heading != "## Detection latency" {
		t.Fatalf("sections = %+v", secs)
	}
	copySec := secs[0].Text
	for _, want := range []string{"- command: `go run ./bench -runs 3 -write`", "- runs: 3 per tool",
		"Each tool puts the same paths.", "| nixpush push | 1.27 s |", "- large-tree: fine."} {
		if !strings.Contains(copySec, want) {
			t.Errorf("copy section lost %q:\n%s", want, copySec)
		}
	}
	if !strings.Contains(secs[1].Text, "first run") || !strings.Contains(secs[1].Text, "at end 2.00 2.00 2.00") {
		t.Errorf("daemon section = %q", secs[1].Text)
	}

	// A second run replaces its own section in place and nothing else.
	again := mergeDoc(doc, []*report{testReport("Detection latency", "second run")})
	if strings.Contains(again, "first run") || !strings.Contains(again, "second run") {
		t.Errorf("section not replaced:\n%s", again)
	}
	if _, s2 := splitDoc(again); len(s2) != 2 || s2[0].Text != secs[0].Text {
		t.Errorf("copy section changed on the second merge:\n%s", again)
	}
	if strings.Count(again, "- command: `go run ./bench -runs 3 -write`") != 1 {
		t.Errorf("run info of the copy section duplicated:\n%s", again)
	}
	if strings.Contains(again, "\n\n\n") || strings.HasSuffix(again, "\n\n") || !strings.HasSuffix(again, "\n") {
		t.Errorf("spacing off:\n%q", again)
	}
}

func TestMergeDocIntoNothing(t *testing.T) {
	doc := mergeDoc("", []*report{testReport("Idle daemon", "idle")})
	_, secs := splitDoc(doc)
	if len(secs) != 1 || secs[0].Heading != "## Idle daemon" {
		t.Fatalf("sections = %+v", secs)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var l latencies
	for i := 1; i <= 200; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 100 * time.Millisecond}, {0.99, 198 * time.Millisecond}, {1, 200 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := l.percentile(c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}
