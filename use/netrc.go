package use

import (
	"fmt"
	"strings"
)

// netrcToken is one token of a netrc file and where it is.
type netrcToken struct {
	text       string
	start, end int // byte offsets in the file
}

// netrcTokenize splits a netrc file as curl reads it: white space
// separates tokens, '#' starting a token comments out the rest of the line,
// and "macdef NAME" starts a macro that runs to the next empty line.
// Quoted tokens are not needed here: we only ever look at keywords, host
// names and our own entry, and refuse values that would need quotes.
func netrcTokenize(s string) []netrcToken {
	var toks []netrcToken
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(s)
			}
		default:
			start := i
			for i < len(s) && !strings.ContainsRune(" \t\r\n", rune(s[i])) {
				i++
			}
			toks = append(toks, netrcToken{s[start:i], start, i})
			if s[start:i] == "macdef" {
				if j := strings.Index(s[i:], "\n\n"); j >= 0 {
					i += j + 2
				} else {
					i = len(s)
				}
			}
		}
	}
	return toks
}

// setNetrcEntry makes the netrc text hold exactly "machine host login
// login password password" for host: the first entry for host is replaced
// (other entries and comments keep their bytes), or a new line is added,
// before any "default" entry, which would otherwise match first. It
// reports whether the text changed.
func setNetrcEntry(netrc, host, login, password string) (string, bool, error) {
	for _, v := range []string{host, login, password} {
		if v == "" || strings.ContainsAny(v, " \t\r\n\"#") {
			return "", false, fmt.Errorf("netrc entry for %s: host, login and password must be non-empty, without white space, quotes or '#'", host)
		}
	}
	entry := "machine " + host + " login " + login + " password " + password
	toks := netrcTokenize(netrc)
	isStart := func(t string) bool { return t == "machine" || t == "default" || t == "macdef" }
	for i := 0; i < len(toks); i++ {
		if toks[i].text == "default" {
			return netrc[:toks[i].start] + entry + "\n" + netrc[toks[i].start:], true, nil
		}
		if toks[i].text != "machine" || i+1 >= len(toks) || toks[i+1].text != host {
			continue
		}
		j := i + 1
		for j+1 < len(toks) && !isStart(toks[j+1].text) {
			j++
		}
		if texts(toks[i:j+1]) == entry {
			return netrc, false, nil
		}
		return netrc[:toks[i].start] + entry + netrc[toks[j].end:], true, nil
	}
	return appendLine(netrc, entry), true, nil
}

func texts(toks []netrcToken) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}
