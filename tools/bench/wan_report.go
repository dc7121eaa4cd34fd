package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

const wanIntro = "Each tool pushes paths of one private store to a cache on 127.0.0.1 through toxiproxy " +
	"(`internal/servertest`; `toxiproxy-server` from scripts/toxiproxy.sh), which delays data by half the round trip " +
	"in each direction (toxic `latency` upstream and downstream) and, for the closure and the large tree, caps it at " +
	"100 Mbit/s each way (toxic `bandwidth`, 12,500 KB/s). " +
	"HTTP: nginx with WebDAV PUT (as in the remote suite), every new push to a fresh URL path: " +
	"`nix --store ROOT copy --to 'http://PROXY/run-N/?compression=zstd&secret-key=SEC' PATHS` beside " +
	"`nixpush push --store ROOT --to http://PROXY/run-N/ --signing-key SEC --state-dir STATE PATHS` (its defaults). " +
	"S3: versitygw (posix backend) behind its own proxy, " +
	"`nixpush push --store ROOT --to 's3://BUCKET/run-N?endpoint=PROXY&scheme=http' --signing-key SEC --state-dir STATE PATHS`. " +
	"Every run has a fresh home, so Nix's narinfo cache (XDG_CACHE_HOME) never helps it, and after every run the bench " +
	"counts one narinfo per path on the server's disk. " +
	"Workloads: the first 300 and all 1,000 of the remote suite's small paths (100 B–4 KB) to a fresh location (\"new\"), " +
	"then the same paths again to the same location (\"present\"): nixpush with the state dir of its first push " +
	"(a re-run on the same machine) and with an empty one (a new CI runner), nix copy with a fresh Nix cache; " +
	"a realistic closure (real derivations built by Nix: 1,050 paths in 25 layers, each referring to 1–3 paths of the " +
	"layer below and sometimes one further down; 95 % under 10 KB, a tail to 20 MB and one 50 MB path, large paths " +
	"half random bytes); the Go toolchain as one 235 MB path. " +
	"Limit: max(depth × round trip, output bytes ÷ 100 Mbit/s), where depth is the longest reference chain " +
	"(a narinfo cannot be written before its references' narinfos) and output is the row's own compressed NARs. " +
	"Peak RSS is the tool's (wait4)."

// wanCaveats is what toxiproxy does not model, which bears on every figure.
var wanCaveats = []string{
	"Connecting costs no round trip here: a tool's TCP handshake is with toxiproxy on loopback, and toxiproxy delays " +
		"data, not connection set-up. On a real link each new connection costs one round trip (two or more with TLS), " +
		"so tools that open many connections look better here than they would be.",
	"toxiproxy caps bandwidth per connection, not per link: k parallel connections get k × 100 Mbit/s. A single " +
		"upload (the large tree, one NAR, unless the tool splits it) sees the 100 Mbit/s link; the closure's limit is a " +
		"true bound only for a tool that keeps one upload in flight at a time, and a parallel tool can beat it.",
	"\"present, state dir from the first push\" is a re-run whose every path nixpush's memo saw within its TTL " +
		"(--memo-ttl, 24 h by default): over HTTP it sends one request, for nix-cache-info, whose ID tells whether the " +
		"cache is still the one the memo describes (a cache wiped or made again is noticed; issue 22), sent while the " +
		"closure is read; over S3 two (the client's HeadBucket at start, then nix-cache-info). It trusts the memo for " +
		"paths, not the cache: a narinfo deleted behind the " +
		"machine's back within the TTL is pushed again only with --recheck or verify --repair (README, \"Pushing over a " +
		"slow link\"). Nothing else in these tables uses the memo.",
}

// wanReport renders every group at every round trip as one table each,
// with the targets checked on the HTTP figures.
func wanReport(b *bench, s *wanSuite, ins *wanInputSet, notes []string) *report {
	r := &report{Title: "Push over a slow link: HTTP (nginx) and S3 (versitygw) through toxiproxy", Intro: wanIntro,
		Method: fmt.Sprintf("%d per tool and workload (-wan-runs), the order of tools rotating from run to run; "+
			"tables show the median, the minimum, and for memory the maximum", b.wanRuns)}
	if ins.closure != nil {
		notes = append(notes, fmt.Sprintf("The closure: %s paths, %s of NAR, longest reference chain %d paths.",
			thousands(len(ins.closure.Paths)), megabytes(float64(ins.closure.NARSize)), ins.closureDepth))
	}
	if ins.tree != nil {
		notes = append(notes, fmt.Sprintf("The large tree: %s of NAR in %s files.",
			megabytes(float64(ins.tree.NARSize)), thousands(ins.tree.Files)))
	}
	http := s.groups[0]
	for _, rtt := range b.rtts {
		for _, g := range s.groups {
			r.Sections = append(r.Sections, section{
				Title: fmt.Sprintf("%s (%s), round trip %v", g.protocol, g.server, rtt),
				Table: wanTable(g, http, rtt)})
		}
		if rtt == wanTargetRTT {
			r.Targets = append(r.Targets, wanTargets(http, rtt)...)
		}
	}
	if !slices.Contains(b.rtts, wanTargetRTT) {
		notes = append(notes, fmt.Sprintf("The speed targets are set at a %v round trip, not run here.", wanTargetRTT))
	} else if len(b.rtts) > 1 {
		notes = append(notes, fmt.Sprintf("The speed targets are set at a %v round trip (issue 9); the tables at other "+
			"round trips are for comparison. At a shorter one local work weighs more against nix copy's round trips; "+
			"at a longer one the fixed round trips of a push (nix-cache-info, the checks, the last narinfo) weigh more "+
			"against a bandwidth limit.", wanTargetRTT))
	}
	r.Targets = append(r.Targets, wanRSSTarget(s.groups))
	r.Notes = append(append(notes, wanCaveats...),
		"Time: at -rtt 50 with -wan-runs 1 the timed runs of the default workloads (300, closure, tree) take about "+
			"8 minutes, most of it nix copy (each path costs it several round trips in turn); -wan-workloads 1000 adds "+
			"about 6 more; every workload at -rtt 20,50,100 takes about 40 minutes. The first run also builds the closure (1,050 derivations, kept in -work): 20 minutes on "+
			"this shared 2-core machine under load.")
	return r
}

// reference finds the nix copy row for a row's workload: in its own
// group, else (S3 without nix copy) in the HTTP group, marked with †.
func reference(g, http *wanGroup, rtt time.Duration, workload string) (*wanRow, string) {
	for _, grp := range []*wanGroup{g, http} {
		for _, r := range grp.rows[rtt] {
			if r.workload == workload && r.tool == nixCopyName {
				if grp != g {
					return r, " †"
				}
				return r, ""
			}
		}
	}
	return nil, ""
}

func (r *wanRow) wall() stat { return summarise(r.samples, wallSeconds) }

// limit is max(depth × rtt, output ÷ bandwidth) in seconds, 0 for none.
func (r *wanRow) limit(rtt time.Duration) float64 {
	if r.depth == 0 {
		return 0
	}
	return max(float64(r.depth)*rtt.Seconds(), summarise(r.samples, outputBytes).Median/r.bandwidth)
}

func wanTable(g, http *wanGroup, rtt time.Duration) *table {
	t := &table{Header: []string{"workload", "variant", "tool", "wall median", "wall min", "nix copy time ÷ this",
		"limit", "wall ÷ limit", "CPU user+sys", "peak RSS max", "output"}}
	for _, row := range byWorkload(g.rows[rtt]) {
		wall := row.wall()
		ratio := "–"
		if ref, mark := reference(g, http, rtt, row.workload); ref != nil && row.tool != nixCopyName {
			ratio = fmt.Sprintf("%.2f×%s", ref.wall().Median/wall.Median, mark)
		}
		limit, over := "–", "–"
		if l := row.limit(rtt); l > 0 {
			limit, over = seconds(l), fmt.Sprintf("%.2f", wall.Median/l)
		}
		t.add(row.workload, row.variant, row.tool, seconds(wall.Median), seconds(wall.Min), ratio, limit, over,
			seconds(summarise(row.samples, cpuSeconds).Median), mib(summarise(row.samples, rssBytes).Max),
			megabytes(summarise(row.samples, outputBytes).Median))
	}
	return t
}

// wanTargetRTT is the round trip the speed targets are set at.
const wanTargetRTT = 50 * time.Millisecond

// wanTargets checks the goals on the HTTP rows at rtt, where
// nix copy runs side by side (skipping workloads not run).
func wanTargets(http *wanGroup, rtt time.Duration) []targetResult {
	find := func(workload, variant string) *wanRow {
		for _, r := range http.rows[rtt] {
			if r.workload == workload && r.variant == variant && r.tool == nixpushName {
				return r
			}
		}
		return nil
	}
	var out []targetResult
	speed := func(name, workload, variant string, want float64) {
		row := find(workload, variant)
		ref, _ := reference(http, http, rtt, workload)
		if row == nil || ref == nil {
			return
		}
		got := ref.wall().Median / row.wall().Median
		out = append(out, targetResult{Name: fmt.Sprintf("%v, HTTP, %s: ≥ %g× nix copy", rtt, name, want), Met: got >= want,
			Detail: fmt.Sprintf("%.2f× (nix copy %s, nixpush %s)", got, seconds(ref.wall().Median), seconds(row.wall().Median))})
	}
	near := func(name, workload string, within float64) {
		row := find(workload, "fresh cache")
		if row == nil {
			return
		}
		l := row.limit(rtt)
		got := row.wall().Median / l
		out = append(out, targetResult{Name: fmt.Sprintf("%v, HTTP, %s: wall ≤ %g × limit", rtt, name, within), Met: got <= within,
			Detail: fmt.Sprintf("%.2f × (wall %s, limit %s)", got, seconds(row.wall().Median), seconds(l))})
	}
	speed("300 new small paths", "300 small paths new", "fresh cache", 40)
	speed("300 present, state dir of the first push", "300 small paths present", "state dir from the first push", 10)
	speed("300 present, empty state dir", "300 small paths present", "empty state dir", 2)
	speed("realistic closure", "closure new", "fresh cache", 20)
	near("realistic closure", "closure new", 2)
	near("235 MB tree at 100 Mbit/s", "large tree new", 1.1)
	return out
}

// wanRSSTarget: nixpush's peak RSS stays ≤ 150 MiB in every row.
func wanRSSTarget(groups []*wanGroup) targetResult {
	const limit = 150 << 20
	worst, where := 0.0, ""
	for _, g := range groups {
		for rtt, rows := range g.rows {
			for _, r := range rows {
				if r.tool != nixpushName {
					continue
				}
				if m := summarise(r.samples, rssBytes).Max; m > worst {
					worst, where = m, fmt.Sprintf("%s, %v, %s (%s)", g.protocol, rtt, r.workload, r.variant)
				}
			}
		}
	}
	return targetResult{Name: "nixpush peak RSS ≤ 150 MiB in every workload", Met: worst <= limit,
		Detail: fmt.Sprintf("largest %s: %s", mib(worst), strings.TrimSpace(where))}
}

// parseRTTs reads -rtt: milliseconds, comma-separated.
func parseRTTs(list string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(list, ",") {
		ms, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || ms < 2 {
			return nil, fmt.Errorf("-rtt: %q is not a round trip in ms (2 or more)", f)
		}
		out = append(out, time.Duration(ms)*time.Millisecond)
	}
	return out, nil
}

// parseWorkloads reads -wan-workloads.
func parseWorkloads(list string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(wanWorkloads, f) {
			return nil, fmt.Errorf("-wan-workloads: unknown workload %q (have: %s)", f, strings.Join(wanWorkloads, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// byWorkload orders rows by workload (in the order they were first run),
// keeping the order of rows within a workload: with tools rotating from
// run to run, the raw order mixes them.
func byWorkload(rows []*wanRow) []*wanRow {
	var order []string
	for _, r := range rows {
		if !slices.Contains(order, r.workload) {
			order = append(order, r.workload)
		}
	}
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b *wanRow) int {
		return slices.Index(order, a.workload) - slices.Index(order, b.workload)
	})
	return out
}
