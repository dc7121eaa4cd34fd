package main

import (
	"context"
	"fmt"
	"time"
)

const watchExecIntro = "What pushing while building costs a build. Three variants build the same thing in one private store " +
	"(`nix-build --store ROOT --no-out-link builds.nix --argstr seed SEED --argstr kind KIND`; the expression is in " +
	"`tools/bench/watchexec_builds.go`): the build alone; the build followed by " +
	"`nix --store ROOT copy --to 'file:///CACHE?compression=zstd&secret-key=SEC' OUTPUTS` (the outputs' closures, in one " +
	"bash script); and `nixpush watch-exec --store ROOT --to file:///CACHE?compression=zstd --signing-key SEC " +
	"--state-dir FRESH -- nix-build ...`, which pushes while the build runs and then waits for the rest. " +
	"Every run has its own seed, so every derivation is new and built from scratch, and fresh cache, state and home dirs. " +
	"The variants are interleaved and their order rotates from run to run; each variant first builds a tiny " +
	"derivation untimed. Wall time is exec to exit; CPU and peak RSS come from wait4 " +
	"(the builders included); output is the cache's nar/ files."

// runWatchExecSuite times the variants on each build case.
func runWatchExecSuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("watchexec")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	s, err := newBuildSetup(ctx, b.work, scratch)
	if err != nil {
		return nil, err
	}
	nonce := time.Now().Unix() % 100000
	for i, v := range buildVariants {
		if _, err := runVariant(ctx, b, s, v, warmupCase, fmt.Sprintf("w%d-v%d", nonce, i)); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	r := &report{
		Title:  "watch-exec overhead: pushing while nix-build runs",
		Method: fmt.Sprintf("%d per variant, interleaved, order rotating; tables show the median, the minimum, and for memory the maximum", b.runs),
		Intro:  watchExecIntro,
	}
	for _, c := range buildCases {
		sec := section{Title: c.title, Reference: buildVariants[0].name}
		for _, v := range buildVariants {
			sec.Results = append(sec.Results, result{Tool: v.name})
		}
		for run := range b.runs {
			for k := range buildVariants {
				i := (k + run) % len(buildVariants)
				seed := fmt.Sprintf("b%d-r%d-v%d", nonce, run, i)
				sample, err := runVariant(ctx, b, s, buildVariants[i], c, seed)
				if err != nil {
					return nil, err
				}
				logf("%s run %d/%d, %s: %s wall, %s CPU, %s", c.kind, run+1, b.runs, buildVariants[i].name,
					seconds(sample.Wall.Seconds()), seconds(sample.CPU.Seconds()), megabytes(float64(sample.Output)))
				sec.Results[i].Samples = append(sec.Results[i].Samples, sample)
			}
		}
		r.Sections = append(r.Sections, sec)
		r.Targets = append(r.Targets, overheadTarget(&sec, c.kind))
		r.Notes = append(r.Notes, c.note, overheadNote(&sec, c.kind))
		if n := noiseNote(&sec, c.kind); n != "" {
			r.Notes = append(r.Notes, n)
		}
	}
	return r, nil
}

// The rows of a section, by variant.
func variantWall(s *section, i int) stat {
	return summarise(s.result(buildVariants[i].name).Samples, wallSeconds)
}

// overheadTarget: watch-exec's median at most 1.10× the plain build's.
func overheadTarget(s *section, kind string) targetResult {
	plain, we := variantWall(s, 0), variantWall(s, 2)
	ratio := we.Median / plain.Median
	detail := fmt.Sprintf("%.2f× (median %s vs %s)", ratio, seconds(we.Median), seconds(plain.Median))
	if ratio <= 1.10 {
		return targetResult{kind + ": watch-exec ≤ 1.10× the build alone", true, detail}
	}
	return targetResult{kind + ": watch-exec ≤ 1.10× the build alone", false,
		fmt.Sprintf("%s, %.2f over: %s more than the target allows", detail, ratio-1.10, seconds(we.Median-1.10*plain.Median))}
}

// overheadNote gives the other ratios: against build + nix copy, on
// minimums, and where CPU time went.
func overheadNote(s *section, kind string) string {
	plain, copied, we := variantWall(s, 0), variantWall(s, 1), variantWall(s, 2)
	cpu := func(i int) float64 { return summarise(s.result(buildVariants[i].name).Samples, cpuSeconds).Median }
	return fmt.Sprintf("%s: watch-exec ÷ build alone = %.2f× on medians, %.2f× on minimums; "+
		"watch-exec ÷ (build, then nix copy) = %.2f× on medians, %.2f× on minimums; "+
		"push time added to the build: watch-exec %s, nix copy %s (medians); CPU medians: build %s, build + copy %s, watch-exec %s.",
		kind, we.Median/plain.Median, we.Min/plain.Min, we.Median/copied.Median, we.Min/copied.Min,
		seconds(we.Median-plain.Median), seconds(copied.Median-plain.Median),
		seconds(cpu(0)), seconds(cpu(1)), seconds(cpu(2)))
}
