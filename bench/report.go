package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// report is what one suite found. Suites fill it; render turns it into
// Markdown for stdout and docs/benchmarks.md.
type report struct {
	Title    string
	Intro    string // what the suite measures and how, one paragraph
	Sections []section
	Targets  []targetResult
	Notes    []string
}

// section is one input measured with several tools: one table.
type section struct {
	Title     string
	Reference string // the tool the "÷" column divides by, e.g. "nix copy"
	Results   []result
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

// page is everything a benchmark run writes.
type page struct {
	Command string
	Date    time.Time
	Machine machine
	Runs    int
	Reports []*report
}

func (p *page) markdown() string {
	var b strings.Builder
	m := p.Machine
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by the bench program (`bench/`); do not edit by hand, re-run it.\n\n")
	fmt.Fprintf(&b, "- command: `%s`\n", p.Command)
	fmt.Fprintf(&b, "- date: %s\n", p.Date.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- machine: nproc %d (%s), load average at start %s\n", m.CPUs, m.CPUModel, m.LoadAvg)
	fmt.Fprintf(&b, "- versions: %s; %s; %s; nixpush %s\n", m.Go, m.Nix, m.Zstd, m.Revision)
	fmt.Fprintf(&b, "- runs: %d per tool, interleaved (nixpush, nix copy, limit, nixpush, ...); "+
		"tables show the median, the minimum, and for memory the maximum\n", p.Runs)
	for _, r := range p.Reports {
		r.markdown(&b)
	}
	return b.String()
}

func (r *report) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s\n\n%s\n", r.Title, r.Intro)
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
}

func (s *section) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n### %s\n\n", s.Title)
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
		speed := "–"
		if ref != nil && wall.Median > 0 {
			speed = fmt.Sprintf("%.2f×", summarise(ref.Samples, wallSeconds).Median/wall.Median)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s (%s) | %.2f | %s / %s | %s | %s | %.2f cores |\n",
			strings.ReplaceAll(r.Tool, "|", `\|`), seconds(wall.Median), seconds(wall.Min),
			seconds(cpu.Median), seconds(sys.Median), cpu.Median/wall.Median, mib(rss.Median), mib(rss.Max),
			megabytes(out.Median), speed, others.Median)
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

// megabytes uses decimal MB, as docs/performance-notes.md does.
func megabytes(bytes float64) string { return fmt.Sprintf("%.1f MB", bytes/1e6) }

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
