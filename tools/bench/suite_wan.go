package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"nixpush/internal/servertest"
)

// wanBandwidth is the link of the closure and large-tree workloads:
// 100 Mbit/s, in bytes per second.
const wanBandwidth = 100_000_000 / 8

// The workloads of -wan-workloads.
const (
	wan300     = "300"
	wan1000    = "1000"
	wanClosure = "closure"
	wanTree    = "tree"
)

var wanWorkloads = []string{wan300, wan1000, wanClosure, wanTree}

// wanDefaultWorkloads leave out the 1,000 small paths: at 50 ms nix copy
// alone takes about 5 minutes on them, and the rest takes about 8.
var wanDefaultWorkloads = []string{wan300, wanClosure, wanTree}

// wanRow is one workload pushed by one tool to one server at one round
// trip: every timed run of it.
type wanRow struct {
	workload string // the key a row's nix copy reference shares with it: "300 present"
	variant  string // what differs between rows of a workload: "state dir from the first push"
	tool     string
	samples  []Sample
	// depth and bandwidth give the row's limit, max(depth × rtt,
	// output / bandwidth); depth 0 means no limit is reported.
	depth     int
	bandwidth float64
}

// wanGroup is one server behind its proxy and the tools pushing to it.
type wanGroup struct {
	protocol, server string // "HTTP", "nginx"
	proxy            *servertest.Proxy
	tools            []wanTool
	rows             map[time.Duration][]*wanRow
}

// row returns the row for (workload, variant, tool) at rtt, creating it.
func (g *wanGroup) row(rtt time.Duration, workload, variant, tool string) *wanRow {
	for _, r := range g.rows[rtt] {
		if r.workload == workload && r.variant == variant && r.tool == tool {
			return r
		}
	}
	r := &wanRow{workload: workload, variant: variant, tool: tool}
	g.rows[rtt] = append(g.rows[rtt], r)
	return r
}

// wanSuite is the state of one run of the suite.
type wanSuite struct {
	b      *bench
	groups []*wanGroup
	rtt    time.Duration // the round trip being measured
	order  int           // rotates the order of tools from run to run
}

// entry is one tool of one group, the unit the runs interleave.
type wanEntry struct {
	g *wanGroup
	t wanTool
}

// entries lists every tool of every group, rotated by one more each call,
// so that no tool always runs first (on a cold server) or last.
func (s *wanSuite) entries() []wanEntry {
	var all []wanEntry
	for _, g := range s.groups {
		for _, t := range g.tools {
			all = append(all, wanEntry{g, t})
		}
	}
	k := s.order % len(all)
	s.order++
	return append(all[k:], all[:k]...)
}

// pushNewThenPresent pushes in to a fresh location with each tool, then
// (with present) the same paths again to the same location: nixpush once
// with the state dir of its first push (a re-run on this machine) and
// once with an empty one (a new CI runner); nix copy with a fresh Nix
// cache, which is all it has.
func (s *wanSuite) pushNewThenPresent(ctx context.Context, in *Input, label string, present bool) error {
	w := s.b.work
	for run := range s.b.wanRuns {
		for _, e := range s.entries() {
			d, err := e.t.fresh()
			if err != nil {
				return err
			}
			state, err := w.newScratch("wan-state")
			if err != nil {
				return err
			}
			w.deleteLater(state)
			step := func(workload, variant, stateDir string) error {
				sample, err := e.t.push(ctx, w, in, d, stateDir)
				if err != nil {
					return fmt.Errorf("%s, %s to %s at %v: %w", workload, e.t.name, e.g.server, s.rtt, err)
				}
				r := e.g.row(s.rtt, workload, variant, e.t.name)
				r.samples = append(r.samples, sample)
				logf("wan %v run %d/%d, %s (%s), %s to %s: %s wall, %s CPU, %s RSS", s.rtt, run+1, s.b.wanRuns,
					workload, variant, e.t.name, e.g.server, seconds(sample.Wall.Seconds()),
					seconds(sample.CPU.Seconds()), mib(float64(sample.MaxRSS)))
				return nil
			}
			if err := step(label+" new", "fresh cache", filepath.Join(state, "first")); err != nil {
				return err
			}
			if !present {
				continue
			}
			if e.t.name == nixCopyName {
				if err := step(label+" present", "fresh Nix cache", ""); err != nil {
					return err
				}
				continue
			}
			if err := step(label+" present", "state dir from the first push", filepath.Join(state, "first")); err != nil {
				return err
			}
			if err := step(label+" present", "empty state dir", filepath.Join(state, "empty")); err != nil {
				return err
			}
		}
	}
	return nil
}

// setLink sets the round trip on every proxy, and the bandwidth cap (0:
// none).
func (s *wanSuite) setLink(bandwidth int64) error {
	for _, g := range s.groups {
		if err := g.proxy.Latency(s.rtt); err != nil {
			return err
		}
		if bandwidth == 0 {
			if err := g.proxy.Remove("bandwidth", servertest.Upstream); err != nil {
				return err
			}
			if err := g.proxy.Remove("bandwidth", servertest.Downstream); err != nil {
				return err
			}
		} else if err := g.proxy.Bandwidth(bandwidth); err != nil {
			return err
		}
	}
	return nil
}

// markLimit gives every row of a workload the limit's depth and bandwidth.
func (s *wanSuite) markLimit(workload string, depth int, bandwidth float64) {
	for _, g := range s.groups {
		for _, r := range g.rows[s.rtt] {
			if r.workload == workload {
				r.depth, r.bandwidth = depth, bandwidth
			}
		}
	}
}

// runWanSuite pushes the workloads through toxiproxy to nginx and
// versitygw at each round trip of -rtt, nix copy side by side.
func runWanSuite(ctx context.Context, b *bench) (*report, error) {
	w := b.work
	scratch, err := w.newScratch("wan-servers")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	defer w.deleteNow()
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
	toxi := servertest.NewToxiproxy(filepath.Join(scratch, "toxiproxy"))
	if err := toxi.Start(); err != nil {
		return nil, err
	}
	defer toxi.Stop()
	ngxProxy, err := toxi.Proxy(ngx.Addr)
	if err != nil {
		return nil, err
	}
	vgwProxy, err := toxi.Proxy(vgw.Addr)
	if err != nil {
		return nil, err
	}

	ins, err := wanInputs(ctx, b)
	if err != nil {
		return nil, err
	}
	httpGroup := &wanGroup{protocol: "HTTP", server: "nginx", proxy: ngxProxy, rows: map[time.Duration][]*wanRow{},
		tools: []wanTool{wanHTTPNixpush(b.bin, ngx, ngxProxy), wanHTTPNixCopy(ngx, ngxProxy)}}
	s3Group := &wanGroup{protocol: "S3", server: "versitygw", proxy: vgwProxy, rows: map[time.Duration][]*wanRow{},
		tools: []wanTool{wanS3Nixpush(b.bin, vgw, vgwProxy)}}
	var notes []string
	anyPath := ins.small.Paths[0]
	s3Copy, why, err := probeNixCopyS3(ctx, w, vgw, anyPath)
	if err != nil {
		return nil, err
	}
	if s3Copy {
		s3Group.tools = append(s3Group.tools, wanS3NixCopy(vgw, vgwProxy))
		notes = append(notes, "nix copy to S3 works with this Nix: the S3 tables measure it side by side, a fresh bucket per run.")
	} else {
		notes = append(notes, fmt.Sprintf("nix copy cannot push to S3 here (this Nix is built without S3 support: `%s`), "+
			"so the S3 tables compare nixpush with nix copy **over HTTP** in the same run (marked †): "+
			"a comparison of nixpush with itself across protocols, and the way to compare S3 before and after a change.", why))
	}
	suite := &wanSuite{b: b, groups: []*wanGroup{httpGroup, s3Group}}
	for _, rtt := range b.rtts {
		suite.rtt = rtt
		if err := suite.runAt(ctx, ins); err != nil {
			return nil, err
		}
	}
	return wanReport(b, suite, ins, notes), nil
}

// wanInputSet is the inputs of the selected workloads (nil when not selected).
type wanInputSet struct {
	small, first300, closure, tree *Input
	closureDepth                   int
}

func wanInputs(ctx context.Context, b *bench) (*wanInputSet, error) {
	var ins wanInputSet
	var err error
	w := b.work
	// The small paths are always set up: the S3 probe pushes one of them.
	if ins.small, err = w.smallPaths(ctx); err != nil {
		return nil, err
	}
	if ins.first300, err = firstPaths(ctx, w, ins.small, 300); err != nil {
		return nil, err
	}
	if slices.Contains(b.wanWorkloads, wanClosure) {
		if ins.closure, err = w.closure(ctx); err != nil {
			return nil, err
		}
		ins.closureDepth = closureDepth(planClosure())
	}
	if slices.Contains(b.wanWorkloads, wanTree) {
		if ins.tree, err = w.largeTree(ctx); err != nil {
			return nil, err
		}
	}
	for _, in := range []*Input{ins.small, ins.closure, ins.tree} {
		if in != nil {
			if _, err := warmUp(ctx, w, in); err != nil {
				return nil, err
			}
		}
	}
	return &ins, nil
}

// runAt runs every selected workload at s.rtt.
func (s *wanSuite) runAt(ctx context.Context, ins *wanInputSet) error {
	if err := s.setLink(0); err != nil {
		return err
	}
	for _, wl := range s.b.wanWorkloads {
		var err error
		switch wl {
		case wan300:
			err = s.pushNewThenPresent(ctx, ins.first300, "300 small paths", true)
		case wan1000:
			err = s.pushNewThenPresent(ctx, ins.small, "1,000 small paths", true)
		case wanClosure:
			if err = s.setLink(wanBandwidth); err == nil {
				err = s.pushNewThenPresent(ctx, ins.closure, "closure", false)
				s.markLimit("closure new", ins.closureDepth, wanBandwidth)
			}
		case wanTree:
			if err = s.setLink(wanBandwidth); err == nil {
				err = s.pushNewThenPresent(ctx, ins.tree, "large tree", false)
				s.markLimit("large tree new", 1, wanBandwidth)
			}
		}
		if err != nil {
			return err
		}
		if err := s.setLink(0); err != nil {
			return err
		}
	}
	return nil
}

// closureDepth is the number of paths on the longest reference chain.
func closureDepth(nodes []closureNode) int {
	depth := make([]int, len(nodes))
	longest := 0
	for i, n := range nodes { // dependencies come before their dependents
		depth[i] = 1
		for _, d := range n.deps {
			depth[i] = max(depth[i], depth[d]+1)
		}
		longest = max(longest, depth[i])
	}
	return longest
}
