package main

// Helpers for the "run as a service" tests (service_integration_test.go):
// the unit file read as systemd reads it, and the metrics endpoint scraped
// as Prometheus scrapes it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitFile is the shipped systemd unit, relative to this package.
const unitFile = "../../systemd/nixpush.service"

// exampleConfig is the shipped example config.
const exampleConfig = "../../systemd/config.example.toml"

// svcFreeAddr returns 127.0.0.1:PORT with a port nothing listens on now.
func svcFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var svcHTTP = &http.Client{Timeout: 5 * time.Second}

// svcScrape reads /metrics in Prometheus' text format: samples by their
// series ("name" or `name{label="v",...}`, as printed).
func svcScrape(addr string) (map[string]float64, error) {
	resp, err := svcHTTP.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		// Series are labelled by cache (one daemon, several caches);
		// tests of one cache name them without it.
		name := cacheLabel.ReplaceAllString(line[:i], "")
		name = strings.Replace(name, "{}", "", 1)
		samples[name] = v
		samples[line[:i]] = v
	}
	return samples, sc.Err()
}

var cacheLabel = regexp.MustCompile(`cache="[^"]*",?`)

// svcHealth is /healthz: status code and decoded JSON body.
type svcHealth struct {
	code int
	body map[string]any
	raw  string
}

func svcGetHealth(addr string) (svcHealth, error) {
	resp, err := svcHTTP.Get("http://" + addr + "/healthz")
	if err != nil {
		return svcHealth{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return svcHealth{}, err
	}
	h := svcHealth{code: resp.StatusCode, raw: string(b)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return h, fmt.Errorf("/healthz Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(b, &h.body); err != nil {
		return h, fmt.Errorf("/healthz body %q: %w", b, err)
	}
	return h, nil
}

// unitLine is one "Key=Value" line of a unit file.
type unitLine struct {
	section, key, value string
	line                int
}

// readUnit parses a unit file the way systemd reads it: sections,
// comments, Key=Value (no line continuations are used in ours).
func readUnit(t *testing.T, file string) []unitLine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []unitLine
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: %q is not Key=Value", file, i+1, line)
			}
			if strings.HasSuffix(v, `\`) {
				t.Fatalf("%s:%d: line continuations are not handled here", file, i+1)
			}
			out = append(out, unitLine{section: section, key: strings.TrimSpace(k), value: strings.TrimSpace(v), line: i + 1})
		}
	}
	return out
}

// unitValues returns every value of section's key, in order.
func unitValues(lines []unitLine, section, key string) []string {
	var vs []string
	for _, l := range lines {
		if l.section == section && l.key == key {
			vs = append(vs, l.value)
		}
	}
	return vs
}

// unitExecStart returns the arguments of the unit's ExecStart, with the
// binary replaced by the one under test and ${NAME} expanded from vars
// (an unknown variable fails the test).
func unitExecStart(t *testing.T, vars map[string]string) []string {
	t.Helper()
	execs := unitValues(readUnit(t, unitFile), "Service", "ExecStart")
	if len(execs) != 1 {
		t.Fatalf("unit has %d ExecStart lines, want 1: %q", len(execs), execs)
	}
	fields := strings.Fields(execs[0])
	if len(fields) < 2 || filepath.Base(fields[0]) != "nixpush" {
		t.Fatalf("ExecStart %q does not run nixpush", execs[0])
	}
	args := fields[1:]
	for i, a := range args {
		args[i] = os.Expand(a, func(name string) string {
			v, ok := vars[name]
			if !ok {
				t.Fatalf("ExecStart uses ${%s}, which the test does not provide", name)
			}
			return v
		})
	}
	return args
}

// svcFlagValue is the value after --name in args, or "".
func svcFlagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// svcReplaceFlag returns args with --name's value replaced.
func svcReplaceFlag(t *testing.T, args []string, name, value string) []string {
	t.Helper()
	out := append([]string(nil), args...)
	for i, a := range out {
		if a == "--"+name && i+1 < len(out) {
			out[i+1] = value
			return out
		}
	}
	t.Fatalf("no --%s in %q", name, args)
	return nil
}
