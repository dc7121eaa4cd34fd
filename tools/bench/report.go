package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// report is what one suite found. Suites fill it; render turns it into
// Markdown for stdout and docs/benchmarks.md.
type report struct {
	Title    string // also the key under which docs/benchmarks.md keeps it
	Method   string // how runs were repeated and summarised, one line
	Intro    string // what the suite measures and how, one paragraph
	Sections []section
	Targets  []targetResult
	Notes    []string
	// Set by run around the suite: each section of the doc says what
	// produced it, since suites are re-run one at a time.
	Command            string
	Date               time.Time
	Machine            machine
	LoadStart, LoadEnd string
}

// section is one input measured with several tools: one table of
// Results, or a Table a suite filled itself.
type section struct {
	Title     string
	Text      string // printed above the table
	Reference string // the tool the "÷" column divides by, e.g. "nix copy"
	Results   []result
	Table     *table
}

// table is a Markdown table: the first column left-aligned, the rest
// (figures) right-aligned.
type table struct {
	Header []string
	Rows   [][]string
}

func (t *table) add(cells ...string) { t.Rows = append(t.Rows, cells) }

func (t *table) markdown(b *strings.Builder) {
	row := func(cells []string) {
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", `\|`)
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
	row(slices.Clone(t.Header))
	align := []string{"---"}
	for range t.Header[1:] {
		align = append(align, "--:")
	}
	fmt.Fprintf(b, "|%s|\n", strings.Join(align, "|"))
	for _, r := range t.Rows {
		row(slices.Clone(r))
	}
}

// result is every sample of one tool in one section.
type result struct {
	Tool    string
	Samples []Sample
}

func (s *section) result(tool string) *result {
	for i := range s.Results {
		if s.Results[i].Tool == tool {
			return &s.Results[i]
		}
	}
	return nil
}

// targetResult is one goal from the issue, checked against the samples.
type targetResult struct {
	Name   string
	Met    bool
	Detail string
}

// docPreamble opens docs/benchmarks.md and what a run prints.
const docPreamble = "# Benchmarks\n\n" +
	"Written by the bench program (`tools/bench/`); do not edit by hand, re-run it. " +
	"Each section comes from one run of one suite and says the command, machine and load it ran with; " +
	"`go run ./tools/bench -suite NAME -write` replaces only the sections of the suites it ran.\n"

// page is everything a benchmark run writes.
type page struct {
	Reports []*report
}

func (p *page) markdown() string {
	var b strings.Builder
	b.WriteString(docPreamble)
	for _, r := range p.Reports {
		b.WriteString(r.markdown())
	}
	return b.String()
}

// heading is the line that starts the report's section of the doc.
func (r *report) heading() string { return "## " + r.Title }

// markdown renders the report's whole section, heading included.
func (r *report) markdown() string {
	b := &strings.Builder{}
	m := r.Machine
	fmt.Fprintf(b, "\n%s\n\n", r.heading())
	fmt.Fprintf(b, "- command: `%s`\n", r.Command)
	fmt.Fprintf(b, "- date: %s\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- machine: nproc %d (%s), load average at start %s, at end %s\n",
		m.CPUs, m.CPUModel, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(b, "- versions: %s; %s; %s; nixpush %s\n", m.Go, m.Nix, m.Zstd, m.Revision)
	if r.Method != "" {
		fmt.Fprintf(b, "- runs: %s\n", r.Method)
	}
	fmt.Fprintf(b, "\n%s\n", r.Intro)
	for _, s := range r.Sections {
		s.markdown(b)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(b, "\n### Targets\n\n")
		for _, t := range r.Targets {
			verdict := "**missed**"
			if t.Met {
				verdict = "met"
			}
			fmt.Fprintf(b, "- %s — %s: %s\n", t.Name, verdict, t.Detail)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(b, "\n### Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
	}
	return b.String()
}

func (s *section) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n### %s\n\n", s.Title)
	if s.Text != "" {
		fmt.Fprintf(b, "%s\n\n", s.Text)
	}
	if s.Table != nil {
		s.Table.markdown(b)
		return
	}
	fmt.Fprintf(b, "| tool | wall median | wall min | CPU user+sys (sys) | cores used | peak RSS median / max | output | %s time ÷ this | others busy |\n", s.Reference)
	fmt.Fprintf(b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	ref := s.result(s.Reference)
	for _, r := range s.Results {
		wall := summarise(r.Samples, wallSeconds)
		cpu := summarise(r.Samples, cpuSeconds)
		sys := summarise(r.Samples, sysSeconds)
		rss := summarise(r.Samples, rssBytes)
		out := summarise(r.Samples, outputBytes)
		others := summarise(r.Samples, othersCores)
		output := "–" // a tool that writes no cache, e.g. a build alone
		if out.Median > 0 {
			output = megabytes(out.Median)
		}
		speed := "–"
		if ref != nil && wall.Median > 0 {
			speed = fmt.Sprintf("%.2f×", summarise(ref.Samples, wallSeconds).Median/wall.Median)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s (%s) | %.2f | %s / %s | %s | %s | %.2f cores |\n",
			strings.ReplaceAll(r.Tool, "|", `\|`), seconds(wall.Median), seconds(wall.Min),
			seconds(cpu.Median), seconds(sys.Median), cpu.Median/wall.Median, mib(rss.Median), mib(rss.Max),
			output, speed, others.Median)
	}
}

// seconds formats a duration in seconds with three significant-ish digits.
func seconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.3f s", s)
	}
	return fmt.Sprintf("%.2f s", s)
}

// thousands formats n with comma separators: 15,036.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mib(bytes float64) string { return fmt.Sprintf("%.0f MiB", bytes/(1<<20)) }

// megabytes uses decimal MB, as docs/performance-notes.md does; below
// 0.1 MB (but not 0) it shows kB, so small outputs do not read as none.
func megabytes(bytes float64) string {
	if bytes > 0 && bytes < 1e5 {
		return fmt.Sprintf("%.1f kB", bytes/1e3)
	}
	return fmt.Sprintf("%.1f MB", bytes/1e6)
}

// writeDoc replaces path with text atomically (temp file + rename).
func writeDoc(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
