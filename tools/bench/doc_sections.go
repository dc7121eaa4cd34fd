package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// docSection is one "## " section of docs/benchmarks.md, heading line
// included, as text.
type docSection struct {
	Heading string
	Text    string
}

// splitDoc cuts a Markdown doc into what comes before the first "## "
// heading and the sections that follow (a "### " line is not a heading
// here: it belongs to its section).
func splitDoc(doc string) (preamble string, sections []docSection) {
	var b strings.Builder
	flush := func() {
		if len(sections) == 0 {
			preamble = b.String()
		} else {
			sections[len(sections)-1].Text = b.String()
		}
		b.Reset()
	}
	for line := range strings.Lines(doc) {
		if strings.HasPrefix(line, "## ") {
			flush()
			sections = append(sections, docSection{Heading: strings.TrimRight(line, "\n")})
		}
		b.WriteString(line)
	}
	flush()
	return preamble, sections
}

// mergeDoc returns the doc with the sections of reports put in place of
// the old sections of the same title, and new titles appended; every
// other section is kept as it was.
//
// The first doc format had one command/date/machine list for the whole
// file, above the sections: those lines are moved into each kept section
// that lacks its own, so it still says what produced it.
func mergeDoc(old string, reports []*report) string {
	oldPreamble, sections := splitDoc(old)
	var runInfo string
	for line := range strings.Lines(oldPreamble) {
		if strings.HasPrefix(line, "- ") {
			runInfo += line
		}
	}
	for i, s := range sections {
		if runInfo != "" && !strings.Contains(s.Text, "\n- command: ") {
			sections[i].Text = s.Heading + "\n\n" + runInfo + strings.TrimPrefix(s.Text, s.Heading+"\n")
		}
	}
	for _, r := range reports {
		text := r.markdown()
		text = strings.TrimPrefix(text, "\n") // splitDoc keeps the blank line before a heading in the previous part
		replaced := false
		for i, s := range sections {
			if s.Heading == r.heading() {
				sections[i].Text, replaced = text, true
			}
		}
		if !replaced {
			sections = append(sections, docSection{Heading: r.heading(), Text: text})
		}
	}
	var b strings.Builder
	b.WriteString(docPreamble + "\n")
	for _, s := range sections {
		b.WriteString(strings.TrimRight(s.Text, "\n") + "\n\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

// updateDoc merges reports into the doc at path (created if missing).
func updateDoc(path string, reports []*report) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return writeDoc(path, mergeDoc(string(old), reports))
}
