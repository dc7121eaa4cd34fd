package httpcache

import "strings"

// netrcLookup finds the login and password for host in a netrc file, as
// curl (and so Nix) reads it: the first "machine HOST" entry, else the
// "default" entry. Tokens are separated by white space; a token may be
// double-quoted (with \" and \\ escapes) to hold spaces; "macdef NAME"
// starts a macro that runs to the next empty line; a line starting with
// # is a comment.
func netrcLookup(data, host string) (login, password string, ok bool) {
	toks := netrcTokens(data)
	var found, isDefault bool
	var dLogin, dPassword string
	for i := 0; i < len(toks); i++ {
		next := func() string {
			if i+1 < len(toks) {
				i++
				return toks[i]
			}
			return ""
		}
		switch toks[i] {
		case "machine":
			if found {
				return login, password, true
			}
			found, isDefault = next() == host, false
		case "default":
			if found {
				return login, password, true
			}
			isDefault = true
		case "login":
			v := next()
			if found {
				login = v
			} else if isDefault {
				dLogin = v
			}
		case "password":
			v := next()
			if found {
				password = v
			} else if isDefault {
				dPassword = v
			}
		case "account":
			next()
		}
	}
	if found {
		return login, password, true
	}
	if dLogin != "" || dPassword != "" {
		return dLogin, dPassword, true
	}
	return "", "", false
}

func netrcTokens(s string) []string {
	var toks []string
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return toks
		}
		if s[0] == '#' {
			_, s, _ = strings.Cut(s, "\n")
			continue
		}
		var tok string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			tok, s = b.String(), s[min(i+1, len(s)):]
		} else {
			i := strings.IndexAny(s, " \t\r\n")
			if i < 0 {
				i = len(s)
			}
			tok, s = s[:i], s[i:]
		}
		if tok == "macdef" {
			if _, rest, ok := strings.Cut(s, "\n\n"); ok {
				s = rest
			} else {
				s = ""
			}
			continue
		}
		toks = append(toks, tok)
	}
}
