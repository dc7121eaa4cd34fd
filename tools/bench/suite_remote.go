package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// remoteCase is one input of the remote suite and its HTTP goal.
type remoteCase struct {
	label   string
	input   func(w *workspace, ctx context.Context) (*Input, error) // a workspace method
	title   func(in *Input) string
	rate    func(in *Input, wall float64) string // throughput over a wall time in seconds
	speedup float64                              // goal: nix copy time ÷ nixpush time over HTTP
}

var remoteCases = []remoteCase{
	{
		label: "small paths", input: (*workspace).smallPaths, speedup: 3,
		title: func(in *Input) string {
			return fmt.Sprintf("%s small paths (%s NAR in all)", thousands(len(in.Paths)), megabytes(float64(in.NARSize)))
		},
		rate: func(in *Input, wall float64) string { return fmt.Sprintf("%.0f paths/s", float64(len(in.Paths))/wall) },
	},
	{
		label: "large tree", input: (*workspace).largeTree, speedup: 2,
		title: func(in *Input) string {
			return fmt.Sprintf("one large tree, the Go toolchain (%s NAR, %s files)", megabytes(float64(in.NARSize)), thousands(in.Files))
		},
		rate: func(in *Input, wall float64) string { return fmt.Sprintf("%.0f MB/s", float64(in.NARSize)/1e6/wall) },
	},
}

const remoteIntro = "Each tool pushes the same paths of one private store (`nix-store --store ROOT`), zstd-compressed " +
	"and signed, to a server on 127.0.0.1 that the bench starts for the suite. " +
	"HTTP: nginx with WebDAV PUT (`servertest.NginxConfig`, as scripts/nginx.sh runs it), every run to a fresh URL path: " +
	"`nix --store ROOT copy --to 'http://127.0.0.1:PORT/run-N/?compression=zstd&secret-key=SEC' PATHS` against " +
	"`nixpush push --store ROOT --to http://127.0.0.1:PORT/run-N/ --signing-key SEC --state-dir FRESH PATHS`. " +
	"S3: versitygw with its posix backend (`versitygw --port 127.0.0.1:PORT --health /health --quiet posix DIR`), " +
	"`nixpush push --store ROOT --to 's3://BUCKET/run-N?endpoint=127.0.0.1:PORT&scheme=http' --signing-key SEC " +
	"--state-dir FRESH PATHS` with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set to the server's root keys and " +
	"AWS_EC2_METADATA_DISABLED=true. Every run has a fresh home (so a fresh XDG_CACHE_HOME: Nix remembers narinfo " +
	"lookups), and after it the bench counts the narinfos on the server's disk (nginx's root, the bucket's directory) " +
	"and fails unless there is one per path pushed; output is the size of the nar/ files there. " +
	"Those dirs stay until the suite ends: deleting a run's thousands of files between runs was seen to slow the " +
	"runs after it (this VM's disk is ext4 mounted with discard), which would time the cleanup. " +
	"CPU and peak RSS are the tool's (wait4); the server's CPU is read from /proc for its process group " +
	"around each run and shown apart (\"others busy\" excludes it). Throughput is the input's NAR size, or its " +
	"number of paths, over the median wall time."

var nixCopyName = nixCopyTool{}.Name()

// remoteSection is one input pushed to one server by its tools.
type remoteSection struct {
	section
	label  string // short name for the notes: "HTTP, small paths"
	server string // "nginx" or "versitygw", for the table
	in     *Input
	rate   func(*Input, float64) string
	tools  []remoteTool
	cpu    [][]time.Duration // per tool, per run: the server's CPU during the run
}

func newRemoteSection(protocol, server string, c remoteCase, in *Input, tools []remoteTool) *remoteSection {
	s := &remoteSection{section: section{Title: fmt.Sprintf("%s (%s): %s", protocol, server, c.title(in))},
		label: protocol + ", " + c.label, server: server, in: in, rate: c.rate, tools: tools,
		cpu: make([][]time.Duration, len(tools))}
	for _, t := range tools {
		s.Results = append(s.Results, result{Tool: t.name})
		if t.name == nixCopyName {
			s.Reference = t.name
		}
	}
	return s
}

// runOnce does one timed run of tool i and records it with the server's
// CPU meanwhile, which it takes out of the run's "others busy".
func (s *remoteSection) runOnce(ctx context.Context, w *workspace, i int) (Sample, time.Duration, error) {
	t := s.tools[i]
	before, err := groupCPU(t.server)
	if err != nil {
		return Sample{}, 0, err
	}
	sample, err := t.run(ctx, w, s.in)
	if err != nil {
		return Sample{}, 0, fmt.Errorf("%s to %s, %s: %w", s.in.Name, s.server, t.name, err)
	}
	after, err := groupCPU(t.server)
	if err != nil {
		return Sample{}, 0, err
	}
	server := after - before
	sample.Others = max(0, sample.Others-server.Seconds()/sample.Wall.Seconds())
	s.Results[i].Samples = append(s.Results[i].Samples, sample)
	s.cpu[i] = append(s.cpu[i], server)
	return sample, server, nil
}

// runRemoteSuite pushes every input to nginx and to versitygw, all tools
// interleaved.
func runRemoteSuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("remote-servers")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	ngx, err := startNginx(filepath.Join(scratch, "nginx"))
	if err != nil {
		return nil, err
	}
	defer ngx.Stop()
	vgw, err := startVersitygw(filepath.Join(scratch, "versitygw"), "nixpush-bench")
	if err != nil {
		return nil, err
	}
	defer vgw.Stop()

	var ins []*Input
	for _, c := range remoteCases {
		in, err := c.input(b.work, ctx)
		if err != nil {
			return nil, err
		}
		ins = append(ins, in)
	}
	r := &report{Title: "Push to remote caches: HTTP (nginx) and S3 (versitygw)", Intro: remoteIntro,
		Method: fmt.Sprintf("%d per tool, server and input, interleaved with the order rotating from run to run; "+
			"before them %s of the small paths by every tool; tables show the median, the minimum, "+
			"and for memory the maximum", b.runs, warmupText())}
	httpTools := []remoteTool{httpNixpush(b.bin, ngx), httpNixCopy(ngx)}
	s3Tools := []remoteTool{s3Nixpush(b.bin, vgw)}
	s3Copy, why, err := probeNixCopyS3(ctx, b.work, vgw, ins[0].Paths[0])
	if err != nil {
		return nil, err
	}
	if s3Copy {
		s3Tools = append(s3Tools, s3NixCopy(vgw))
		r.Notes = append(r.Notes, "nix copy to S3 works with this Nix: it is measured side by side, to a fresh bucket per run.")
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("nix copy cannot push to S3 here, so the S3 tables have nixpush only: "+
			"this Nix is built without S3 support (`nix copy --to 's3://BUCKET?endpoint=…&scheme=http&…'` answers `%s`).", why))
	}

	var httpSecs, s3Secs []*remoteSection
	for i, c := range remoteCases {
		in := ins[i]
		if _, err := warmUp(ctx, b.work, in); err != nil {
			return nil, err
		}
		hs := newRemoteSection("HTTP", "nginx", c, in, httpTools)
		ss := newRemoteSection("S3", "versitygw", c, in, s3Tools)
		if i == 0 {
			if err := warmServers(ctx, b.work, hs, ss); err != nil {
				return nil, err
			}
		}
		type entry struct {
			sec  *remoteSection
			tool int
		}
		var order []entry
		for _, sec := range []*remoteSection{hs, ss} {
			for k := range sec.tools {
				order = append(order, entry{sec, k})
			}
		}
		for run := range b.runs {
			for k := range order {
				e := order[(k+run)%len(order)]
				sample, server, err := e.sec.runOnce(ctx, b.work, e.tool)
				if err != nil {
					return nil, err
				}
				logf("%s run %d/%d, %s to %s: %s wall, %s CPU (%s sys), %s server CPU, %s RSS, %s",
					in.Name, run+1, b.runs, e.sec.tools[e.tool].name, e.sec.server, seconds(sample.Wall.Seconds()),
					seconds(sample.CPU.Seconds()), seconds(sample.Sys.Seconds()), seconds(server.Seconds()),
					mib(float64(sample.MaxRSS)), megabytes(float64(sample.Output)))
			}
		}
		httpSecs, s3Secs = append(httpSecs, hs), append(s3Secs, ss)
		r.Targets = append(r.Targets, speedTarget(&hs.section,
			fmt.Sprintf("%s over HTTP: nixpush ≥ %g× faster than nix copy", c.label, c.speedup), nixpushName, c.speedup))
		r.Notes = append(r.Notes, speedupNote(&hs.section, hs.label))
	}
	for _, sec := range append(httpSecs, s3Secs...) {
		sec.Table = sec.figures()
		r.Sections = append(r.Sections, sec.section)
		r.Notes = append(r.Notes, sec.busyNote())
		if n := noiseNote(&sec.section, sec.label); n != "" {
			r.Notes = append(r.Notes, n)
		}
	}
	return r, nil
}

// warmupRounds is how many untimed pushes of the small paths every tool
// makes before the timed runs: first connections, the servers' first
// directories and Nix's first-run costs stay out of the timed runs.
const warmupRounds = 1

func warmupText() string {
	if warmupRounds == 1 {
		return "one untimed push"
	}
	return fmt.Sprintf("%d untimed pushes", warmupRounds)
}

// warmServers makes the warm-up pushes, every tool of every section in turn.
func warmServers(ctx context.Context, w *workspace, secs ...*remoteSection) error {
	for range warmupRounds {
		for _, sec := range secs {
			for _, t := range sec.tools {
				if _, err := t.run(ctx, w, sec.in); err != nil {
					return fmt.Errorf("warm-up, %s to %s: %w", t.name, sec.server, err)
				}
			}
		}
	}
	return nil
}

// serverCPU is the median server CPU of tool i's runs.
func (s *remoteSection) serverCPU(i int) float64 {
	samples := make([]Sample, len(s.cpu[i]))
	for k, d := range s.cpu[i] {
		samples[k] = Sample{CPU: d}
	}
	return summarise(samples, cpuSeconds).Median
}

// table is the standard figures plus throughput and the server's CPU.
func (s *remoteSection) figures() *table {
	t := &table{Header: []string{"tool", "wall median", "wall min", "throughput", "CPU user+sys (sys)", "cores used",
		s.server + " CPU (cores)", "peak RSS median / max", "output"}}
	ref := s.result(s.Reference)
	if ref != nil {
		t.Header = append(t.Header, s.Reference+" time ÷ this")
	}
	t.Header = append(t.Header, "others busy")
	for i, r := range s.Results {
		wall, cpu, sys := summarise(r.Samples, wallSeconds), summarise(r.Samples, cpuSeconds), summarise(r.Samples, sysSeconds)
		rss, out, others := summarise(r.Samples, rssBytes), summarise(r.Samples, outputBytes), summarise(r.Samples, othersCores)
		server := s.serverCPU(i)
		row := []string{r.Tool, seconds(wall.Median), seconds(wall.Min), s.rate(s.in, wall.Median),
			fmt.Sprintf("%s (%s)", seconds(cpu.Median), seconds(sys.Median)), fmt.Sprintf("%.2f", cpu.Median/wall.Median),
			fmt.Sprintf("%s (%.2f)", seconds(server), server/wall.Median),
			mib(rss.Median) + " / " + mib(rss.Max), megabytes(out.Median)}
		if ref != nil {
			row = append(row, fmt.Sprintf("%.2f×", summarise(ref.Samples, wallSeconds).Median/wall.Median))
		}
		t.add(append(row, fmt.Sprintf("%.2f cores", others.Median))...)
	}
	return t
}

// busyNote says where each tool's wall time went on medians: its own
// user and system CPU, the server's, and how many of the machine's cores
// that kept busy. A push that keeps well under all cores busy waits (on
// the network, the server or itself); one near all of them is CPU-bound.
func (s *remoteSection) busyNote() string {
	var parts []string
	for i, r := range s.Results {
		wall := summarise(r.Samples, wallSeconds).Median
		cpu, sys := summarise(r.Samples, cpuSeconds).Median, summarise(r.Samples, sysSeconds).Median
		server := s.serverCPU(i)
		parts = append(parts, fmt.Sprintf("%s: user %s + sys %s, %s %s: %.2f of %d cores busy over %s",
			r.Tool, seconds(cpu-sys), seconds(sys), s.server, seconds(server),
			(cpu+server)/wall, runtime.NumCPU(), seconds(wall)))
	}
	return fmt.Sprintf("%s, CPU medians: %s.", s.label, strings.Join(parts, "; "))
}
