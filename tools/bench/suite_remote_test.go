package main

import (
	"strings"
	"testing"
	"time"
)

// A remote table has a "÷" column only when nix copy ran in its section,
// and shows the server's CPU next to the tool's.
func TestRemoteFigures(t *testing.T) {
	in := &Input{Name: "small-paths", Paths: make([]string, 1000), NARSize: 2_300_000}
	sample := func(wall, cpu time.Duration) Sample { return Sample{Wall: wall, CPU: cpu, Output: 700_000} }
	for _, tc := range []struct {
		name    string
		tools   []string
		wantCol bool
	}{
		{"nixpush only (S3 without nix copy)", []string{nixpushName}, false},
		{"nixpush and nix copy", []string{nixpushName, nixCopyName}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tools []remoteTool
			for _, n := range tc.tools {
				tools = append(tools, remoteTool{name: n})
			}
			s := newRemoteSection("HTTP", "nginx", remoteCases[0], in, tools)
			for i := range tools {
				s.Results[i].Samples = []Sample{sample(time.Second, 500*time.Millisecond), sample(2*time.Second, time.Second)}
				s.cpu[i] = []time.Duration{250 * time.Millisecond, 750 * time.Millisecond}
			}
			var b strings.Builder
			s.figures().markdown(&b)
			got := b.String()
			if has := strings.Contains(got, "nix copy time ÷ this"); has != tc.wantCol {
				t.Errorf("ratio column present = %v, want %v:\n%s", has, tc.wantCol, got)
			}
			// Medians: wall 1.50 s, tool CPU 0.750 s, server CPU 0.500 s.
			for _, want := range []string{"| nixpush push | 1.50 s | 1.00 s | 667 paths/s | 0.750 s (0.000 s) | 0.50 | 0.500 s (0.33) |", "nginx CPU (cores)"} {
				if !strings.Contains(got, want) {
					t.Errorf("table lacks %q:\n%s", want, got)
				}
			}
		})
	}
}
