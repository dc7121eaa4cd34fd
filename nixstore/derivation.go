package nixstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Derivation is a .drv file as Nix writes it (ATerm): every list in the
// order of the file, which Nix keeps sorted. go-nix's parser refuses the
// outputs of floating content-addressed derivations (no path), which are
// the ones nixpush needs to read, hence this one.
type Derivation struct {
	Outputs   []DerivationOutput
	InputDrvs []InputDrv
	InputSrcs []string
	Platform  string
	Builder   string
	Args      []string
	Env       []EnvVar
}

// DerivationOutput is one output: its path is "" for a floating
// content-addressed output, and HashAlgo and Hash are set for a
// content-addressed one (Hash only when it is fixed).
type DerivationOutput struct{ Name, Path, HashAlgo, Hash string }

// InputDrv is an input derivation and the outputs used of it.
type InputDrv struct {
	Path    string
	Outputs []string
}

// EnvVar is one variable of the builder's environment.
type EnvVar struct{ Name, Value string }

// ReadDerivation reads a .drv file of the store (a logical path).
func (s *Store) ReadDerivation(drvPath string) (*Derivation, error) {
	b, err := os.ReadFile(s.RealPath(drvPath))
	if err != nil {
		return nil, fmt.Errorf("read derivation %s: %w", drvPath, err)
	}
	d, err := ParseDerivation(b)
	if err != nil {
		return nil, fmt.Errorf("read derivation %s: %w", drvPath, err)
	}
	return d, nil
}

// fixed reports whether the derivation is fixed-output: one output,
// "out", whose hash is given in advance.
func (d *Derivation) fixed() bool {
	return len(d.Outputs) == 1 && d.Outputs[0].Name == "out" && d.Outputs[0].Hash != ""
}

// Unparse writes the derivation as Nix does (Derivation::unparse).
func (d *Derivation) Unparse(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("Derive([")
	for i, o := range d.Outputs {
		comma(bw, i)
		tuple(bw, o.Name, o.Path, o.HashAlgo, o.Hash)
	}
	bw.WriteString("],[")
	for i, in := range d.InputDrvs {
		comma(bw, i)
		bw.WriteByte('(')
		writeString(bw, in.Path)
		bw.WriteByte(',')
		list(bw, in.Outputs)
		bw.WriteByte(')')
	}
	bw.WriteString("],")
	list(bw, d.InputSrcs)
	bw.WriteByte(',')
	writeString(bw, d.Platform)
	bw.WriteByte(',')
	writeString(bw, d.Builder)
	bw.WriteByte(',')
	list(bw, d.Args)
	bw.WriteString(",[")
	for i, e := range d.Env {
		comma(bw, i)
		tuple(bw, e.Name, e.Value)
	}
	bw.WriteString("])")
	return bw.Flush()
}

func comma(w *bufio.Writer, i int) {
	if i > 0 {
		w.WriteByte(',')
	}
}

func tuple(w *bufio.Writer, fields ...string) {
	w.WriteByte('(')
	for i, f := range fields {
		comma(w, i)
		writeString(w, f)
	}
	w.WriteByte(')')
}

func list(w *bufio.Writer, items []string) {
	w.WriteByte('[')
	for i, s := range items {
		comma(w, i)
		writeString(w, s)
	}
	w.WriteByte(']')
}

// writeString quotes s as Nix's printString does.
func writeString(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			w.WriteByte('\\')
			w.WriteByte(c)
		case '\n':
			w.WriteString(`\n`)
		case '\r':
			w.WriteString(`\r`)
		case '\t':
			w.WriteString(`\t`)
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte('"')
}

// errDrvSyntax is a .drv that is not Nix's ATerm.
var errDrvSyntax = errors.New("not a derivation")

// ParseDerivation parses a .drv file's contents.
func ParseDerivation(b []byte) (*Derivation, error) {
	p := &drvParser{b: b}
	d := &Derivation{}
	p.expect("Derive(")
	p.list('[', ']', func() {
		if f := p.strings('(', ')'); len(f) == 4 {
			d.Outputs = append(d.Outputs, DerivationOutput{f[0], f[1], f[2], f[3]})
		} else {
			p.fail("an output of 4 fields")
		}
	})
	p.expect(",")
	p.list('[', ']', func() {
		p.expect("(")
		in := InputDrv{Path: p.str()}
		p.expect(",")
		in.Outputs = p.strings('[', ']')
		p.expect(")")
		d.InputDrvs = append(d.InputDrvs, in)
	})
	p.expect(",")
	d.InputSrcs = p.strings('[', ']')
	p.expect(",")
	d.Platform = p.str()
	p.expect(",")
	d.Builder = p.str()
	p.expect(",")
	d.Args = p.strings('[', ']')
	p.expect(",")
	p.list('[', ']', func() {
		if f := p.strings('(', ')'); len(f) == 2 {
			d.Env = append(d.Env, EnvVar{f[0], f[1]})
		} else {
			p.fail("an environment entry of 2 fields")
		}
	})
	p.expect(")")
	if p.err == nil && p.i != len(b) {
		p.fail("the end")
	}
	return d, p.err
}

// drvParser reads ATerm; the first error sticks and stops everything.
type drvParser struct {
	b   []byte
	i   int
	err error
}

func (p *drvParser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: expected %s at byte %d", errDrvSyntax, what, p.i)
	}
}

func (p *drvParser) expect(s string) {
	if p.err == nil && !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.fail(fmt.Sprintf("%q", s))
	}
	if p.err == nil {
		p.i += len(s)
	}
}

// next reports whether the next byte is c, and eats it if so.
func (p *drvParser) next(c byte) bool {
	if p.err == nil && p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// list reads a comma-separated list between open and end, calling item
// for each element.
func (p *drvParser) list(open, end byte, item func()) {
	p.expect(string(open))
	if p.next(end) {
		return
	}
	for p.err == nil {
		item()
		if !p.next(',') {
			p.expect(string(end))
			return
		}
	}
}

// strings reads a list of strings.
func (p *drvParser) strings(open, end byte) []string {
	var out []string
	p.list(open, end, func() { out = append(out, p.str()) })
	return out
}

// str reads a quoted string, undoing Nix's escapes.
func (p *drvParser) str() string {
	p.expect(`"`)
	var sb strings.Builder
	for p.err == nil {
		if p.i >= len(p.b) {
			p.fail(`closing '"'`)
			break
		}
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			return sb.String()
		case c == '\\' && p.i < len(p.b):
			c = p.b[p.i]
			p.i++
			switch c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
		}
		sb.WriteByte(c)
	}
	return ""
}

// RealisationHash is the hash Nix keys a derivation's realisations by
// ("sha256:<base16>"): hashDerivationModulo with the outputs masked
// (staticOutputHashes; Nix 2.4–2.34), the same for every output. Each
// input derivation stands in it for its own hash modulo, so the input
// .drv files are read too.
func (s *Store) RealisationHash(drvPath string) (string, error) {
	d, err := s.ReadDerivation(drvPath)
	if err != nil {
		return "", err
	}
	h, err := s.hashModulo(d, true, map[string]string{})
	if err != nil {
		return "", err
	}
	return "sha256:" + h, nil
}

// hashModulo is Nix's hashDerivationModulo, in base16: a fixed-output
// derivation hashes to its content address, any other to its ATerm with
// every input derivation replaced by its own hash modulo (and, with mask,
// the outputs' paths and their environment variables emptied). seen
// memoises the inputs' hashes, as Nix's drvHashes does.
func (s *Store) hashModulo(d *Derivation, mask bool, seen map[string]string) (string, error) {
	if d.fixed() {
		o := d.Outputs[0]
		sum := sha256.Sum256([]byte("fixed:out:" + o.HashAlgo + ":" + o.Hash + ":" + o.Path))
		return hex.EncodeToString(sum[:]), nil
	}
	c := *d
	byHash := map[string][]string{}
	for _, in := range d.InputDrvs {
		h, ok := seen[in.Path]
		if !ok {
			dep, err := s.ReadDerivation(in.Path)
			if err != nil {
				return "", err
			}
			if h, err = s.hashModulo(dep, false, seen); err != nil {
				return "", err
			}
			seen[in.Path] = h
		}
		byHash[h] = append(byHash[h], in.Outputs...)
	}
	c.InputDrvs = nil
	for h, outs := range byHash {
		slices.Sort(outs)
		c.InputDrvs = append(c.InputDrvs, InputDrv{Path: h, Outputs: slices.Compact(outs)})
	}
	slices.SortFunc(c.InputDrvs, func(a, b InputDrv) int { return strings.Compare(a.Path, b.Path) })
	if mask {
		c.Outputs = slices.Clone(d.Outputs)
		c.Env = slices.Clone(d.Env)
		for i := range c.Outputs {
			c.Outputs[i].Path = ""
		}
		for i, e := range c.Env {
			if slices.ContainsFunc(d.Outputs, func(o DerivationOutput) bool { return o.Name == e.Name }) {
				c.Env[i].Value = ""
			}
		}
	}
	h := sha256.New()
	if err := c.Unparse(h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
