package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// copyCase is one input of the copy suite and the goals it is held to.
type copyCase struct {
	title   func(in *Input) string
	input   func(w *workspace, ctx context.Context) (*Input, error) // a workspace method
	targets func(s *section) []targetResult
}

var copyCases = []copyCase{
	{
		title: func(in *Input) string {
			return fmt.Sprintf("One large tree: the Go toolchain (%s NAR, %s files, 1 path)",
				megabytes(float64(in.NARSize)), thousands(in.Files))
		},
		input: (*workspace).largeTree,
		targets: func(s *section) []targetResult {
			return []targetResult{
				speedTarget(s, "large tree: nixpush ≥ 1.8× faster than nix copy", nixpushName, 1.8),
				sizeTarget(s, "large tree: nixpush output ≤ 10 % larger than nix copy's", nixpushName, 0.10),
				rssTarget(s, "large tree: nixpush peak RSS ≤ 100 MiB", nixpushName, 100<<20),
				extrasTarget(s),
			}
		},
	},
	{
		title: func(in *Input) string {
			return fmt.Sprintf("%s small paths (%d–%d B of content each; %s NAR in all, %s files)",
				thousands(len(in.Paths)), smallMinBytes, smallMaxBytes, megabytes(float64(in.NARSize)), thousands(in.Files))
		},
		input: (*workspace).smallPaths,
		targets: func(s *section) []targetResult {
			return []targetResult{
				speedTarget(s, "small paths: nixpush ≥ 2× faster than nix copy", nixpushName, 2),
			}
		},
	},
}

var nixpushName = nixpushTool{}.Name()

const copyIntro = "Each tool puts the same paths of one private store (`nix-store --store ROOT`) " +
	"into a fresh `file://` cache with zstd, signing the narinfos: " +
	"`nixpush push --store ROOT --to file:///DIR?compression=zstd --signing-key SEC --state-dir FRESH PATHS` " +
	"against `nix --store ROOT copy --to 'file:///DIR?compression=zstd&secret-key=SEC' PATHS`. " +
	"The limit row is the machine's own floor for the same bytes, " +
	"`nix-store --dump TREE | zstd -T0 -3 | sha256sum`, with no per-path work and nothing written " +
	"(for the small paths TREE is the directory they were added from: their content as one NAR). " +
	"Every input is read once, untimed, before its runs, and dirty pages are synced before each run. " +
	"Each run's cache is kept until the suite ends: deleting thousands of files makes ext4 slower to " +
	"allocate inodes for the next run, which would charge one tool for another's cleanup. " +
	"Output is the sum of the cache's nar/ files (for the limit: the zstd stream); " +
	"CPU and peak RSS come from wait4 of the child (a pipeline: summed CPU, its largest stage's RSS); " +
	"\"others busy\" is the CPU the rest of the machine used during the run."

// runCopySuite measures one push of each input with every tool.
func runCopySuite(ctx context.Context, b *bench) (*report, error) {
	r := &report{Title: "Push to a file:// cache: nixpush vs nix copy", Intro: copyIntro,
		Method: fmt.Sprintf("%d per tool, interleaved (nixpush, nix copy, limit, nixpush, ...); "+
			"tables show the median, the minimum, and for memory the maximum", b.runs)}
	tools := []tool{nixpushTool{bin: b.bin}, nixCopyTool{}, limitTool{}, withoutExtras(b.bin), withExtras(b.bin)}
	defer b.work.deleteNow()
	for _, c := range copyCases {
		in, err := c.input(b.work, ctx)
		if err != nil {
			return nil, err
		}
		warm, err := warmUp(ctx, b.work, in)
		if err != nil {
			return nil, err
		}
		s := section{Title: c.title(in), Reference: nixCopyTool{}.Name()}
		for _, t := range tools {
			s.Results = append(s.Results, result{Tool: t.Name()})
		}
		// Interleave the tools so noise from the shared machine spreads
		// over all of them instead of landing on one.
		for run := range b.runs {
			for i, t := range tools {
				sample, err := t.Run(ctx, b.work, in)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", in.Name, t.Name(), err)
				}
				logf("%s run %d/%d, %s: %s wall, %s CPU, %s RSS, %s",
					in.Name, run+1, b.runs, t.Name(), seconds(sample.Wall.Seconds()),
					seconds(sample.CPU.Seconds()), mib(float64(sample.MaxRSS)), megabytes(float64(sample.Output)))
				s.Results[i].Samples = append(s.Results[i].Samples, sample)
			}
		}
		limit := summarise(s.result(limitTool{}.Name()).Samples, wallSeconds)
		r.Notes = append(r.Notes, fmt.Sprintf("%s: untimed warm-up dump took %s, the timed limit runs %s (median)%s.",
			in.Name, seconds(warm.Seconds()), seconds(limit.Median), coldHint(warm, limit.Median)))
		r.Notes = append(r.Notes, speedupNote(&s, in.Name))
		if n := noiseNote(&s, in.Name); n != "" {
			r.Notes = append(r.Notes, n)
		}
		r.Sections = append(r.Sections, s)
		r.Targets = append(r.Targets, c.targets(&s)...)
	}
	return r, nil
}

// coldHint flags a warm-up much slower than the runs after it (by half
// and by 0.1 s, beyond process start-up noise): the input was not in the
// page cache before, which is why the warm-up exists.
func coldHint(warm time.Duration, limitMedian float64) string {
	if w := warm.Seconds(); w > 1.5*limitMedian && w > limitMedian+0.1 {
		return "; the input was not fully in the page cache before the warm-up"
	}
	return ""
}

// speedupNote gives the nix copy ÷ nixpush ratio on medians and
// minimums, and the same for CPU time, which a busy machine disturbs less.
func speedupNote(s *section, name string) string {
	np, nc := s.result(nixpushName).Samples, s.result(s.Reference).Samples
	a, b := summarise(np, wallSeconds), summarise(nc, wallSeconds)
	ca, cb := summarise(np, cpuSeconds), summarise(nc, cpuSeconds)
	return fmt.Sprintf("%s: nix copy time ÷ nixpush time = %.2f× on medians, %.2f× on minimums; "+
		"CPU time nixpush %s vs nix copy %s (medians).",
		name, b.Median/a.Median, b.Min/a.Min, seconds(ca.Median), seconds(cb.Median))
}

// noiseNote warns when the rest of the machine took a good share of the
// cores during a section's runs: wall-time ratios then say more about
// the scheduler than about the tools.
func noiseNote(s *section, name string) string {
	var all []Sample
	for _, r := range s.Results {
		all = append(all, r.Samples...)
	}
	others, cores := summarise(all, othersCores).Median, float64(runtime.NumCPU())
	if others < 0.25*cores {
		return ""
	}
	return fmt.Sprintf("%s: the machine was busy: other processes used %.1f of %.0f cores (median over all runs), "+
		"so the tools got less than the machine has and wall times are noisy; the CPU columns are steadier.",
		name, others, cores)
}

// speedTarget: tool's median wall time at least want times below the reference's.
func speedTarget(s *section, name, tool string, want float64) targetResult {
	t, ref := summarise(s.result(tool).Samples, wallSeconds), summarise(s.result(s.Reference).Samples, wallSeconds)
	got := ref.Median / t.Median
	if got >= want {
		return targetResult{name, true, fmt.Sprintf("%.2f× (median %s vs %s)", got, seconds(t.Median), seconds(ref.Median))}
	}
	need := ref.Median / want
	return targetResult{name, false, fmt.Sprintf("%.2f×, short by %.2f×: the median %s would have to be %s (%.0f %% less time)",
		got, want-got, seconds(t.Median), seconds(need), 100*(1-need/t.Median))}
}

// sizeTarget: tool's output at most maxOver (a fraction) larger than the reference's.
func sizeTarget(s *section, name, tool string, maxOver float64) targetResult {
	t, ref := summarise(s.result(tool).Samples, outputBytes), summarise(s.result(s.Reference).Samples, outputBytes)
	over := t.Median/ref.Median - 1
	detail := fmt.Sprintf("%+.1f %% (%s vs %s)", 100*over, megabytes(t.Median), megabytes(ref.Median))
	if over <= maxOver {
		return targetResult{name, true, detail}
	}
	return targetResult{name, false, fmt.Sprintf("%s, %.1f points over the limit", detail, 100*(over-maxOver))}
}

// rssTarget: tool's peak RSS, worst run, at most limit bytes.
func rssTarget(s *section, name, tool string, limit float64) targetResult {
	t := summarise(s.result(tool).Samples, rssBytes)
	detail := fmt.Sprintf("%s, the worst of %d runs", mib(t.Max), len(s.result(tool).Samples))
	if t.Max <= limit {
		return targetResult{name, true, detail}
	}
	return targetResult{name, false, fmt.Sprintf("%s, %s over", detail, mib(t.Max-limit))}
}

// The variants that measure what build logs and .ls listings cost (issue
// 12: ≤ 5 % of the large tree's time): neither, and both.
func withoutExtras(bin string) tool { return nixpushTool{bin: bin, extra: []string{"--no-logs"}} }
func withExtras(bin string) tool    { return nixpushTool{bin: bin, extra: []string{"--nar-listing"}} }

func extrasTarget(s *section) targetResult {
	without := summarise(s.result(withoutExtras("").Name()).Samples, wallSeconds).Median
	with := summarise(s.result(withExtras("").Name()).Samples, wallSeconds).Median
	name := "large tree: logs and .ls listings add ≤ 5 % to nixpush's time"
	over := with/without - 1
	detail := fmt.Sprintf("%+.1f %% (median %s with, %s without)", 100*over, seconds(with), seconds(without))
	return targetResult{Name: name, Met: over <= 0.05, Detail: detail}
}
