package use

import (
	"slices"
	"strings"

	"nixpush/nixconf"
)

// A nix.conf line, as Nix 2.8 reads it (libutil/config.cc): everything
// from '#' to the end of the line is a comment; the rest is split on white
// space; a setting is "NAME = VALUE...". "include" lines and anything else
// are left alone. Editing works on lines so that every line we do not
// change keeps its exact bytes.

// setting splits a line into its setting name and values; ok is false for
// blank lines, comments, includes and lines Nix would reject.
func setting(line string) (name string, values []string, ok bool) {
	content, _, _ := strings.Cut(line, "#")
	tokens := strings.Fields(content)
	if len(tokens) < 2 || tokens[1] != "=" {
		return "", nil, false
	}
	return tokens[0], tokens[2:], true
}

// lines returns s split into lines, each keeping its "\n" (the last one
// may have none).
func lines(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// hasValue reports whether a value same as value is already set by any
// line naming one of names (e.g. "substituters" or "extra-substituters").
func hasValue(conf string, same func(a, b string) bool, value string, names ...string) bool {
	for _, l := range lines(conf) {
		name, values, ok := setting(l)
		if ok && slices.Contains(names, name) && slices.ContainsFunc(values, func(v string) bool { return same(v, value) }) {
			return true
		}
	}
	return false
}

// sameString is exact equality, for values such as keys.
func sameString(a, b string) bool { return a == b }

// sameURL compares substituter URLs as one cache: a trailing slash or
// store settings (?priority=...) do not make another cache.
func sameURL(a, b string) bool { return nixconf.SameSubstituter(a, b) }

// lastValue returns the value (values joined by a space) of the last line
// setting name, as Nix keeps the last one.
func lastValue(conf, name string) (string, bool) {
	var v string
	var found bool
	for _, l := range lines(conf) {
		if n, values, ok := setting(l); ok && n == name {
			v, found = strings.Join(values, " "), true
		}
	}
	return v, found
}

// addValue makes name's value include value: nothing when one of the
// names in present already holds one that is the same; else value is appended to the last
// line setting name (before any comment on it), or, when there is none, a
// line "name = value" is added at the end. It reports whether conf changed.
func addValue(conf string, same func(a, b string) bool, name, value string, present ...string) (string, bool) {
	if hasValue(conf, same, value, append(present, name)...) {
		return conf, false
	}
	ls := lines(conf)
	for i := len(ls) - 1; i >= 0; i-- {
		if n, _, ok := setting(ls[i]); ok && n == name {
			ls[i] = appendToLine(ls[i], value)
			return strings.Join(ls, ""), true
		}
	}
	return appendLine(conf, name+" = "+value), true
}

// appendToLine adds value after the last value of a setting line, keeping
// the white space, comment and line ending that follow.
func appendToLine(line, value string) string {
	content, _, hasComment := strings.Cut(line, "#")
	if !hasComment {
		content = line
	}
	kept := strings.TrimRight(content, " \t\r\n")
	return kept + " " + value + line[len(kept):]
}

// appendLine adds a line at the end of conf, after completing a last line
// that lacks its newline.
func appendLine(conf, line string) string {
	if conf != "" && !strings.HasSuffix(conf, "\n") {
		conf += "\n"
	}
	return conf + line + "\n"
}
