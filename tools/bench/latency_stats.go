package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies is one stage's delay for every path of a suite.
type latencies []time.Duration

// percentile is the nearest-rank p-th percentile (0 < p ≤ 1): the
// smallest value at least a fraction p of the samples do not exceed.
// With 200 samples p99 is the 198th smallest, so two outliers do not
// move it and three do.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	v := slices.Clone(l)
	slices.Sort(v)
	rank := int(math.Ceil(p * float64(len(v))))
	return v[min(max(rank, 1), len(v))-1]
}

func (l latencies) min() time.Duration { return slices.Min(l) }
func (l latencies) max() time.Duration { return slices.Max(l) }

// below counts the samples under d.
func (l latencies) below(d time.Duration) int {
	n := 0
	for _, v := range l {
		if v < d {
			n++
		}
	}
	return n
}

// millis formats a duration in milliseconds, to 0.1 ms.
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// latencyTarget checks one percentile of l against a limit.
func latencyTarget(name string, l latencies, p float64, limit time.Duration) targetResult {
	got := l.percentile(p)
	detail := fmt.Sprintf("%s (limit %s, %d samples)", millis(got), millis(limit), len(l))
	if got <= limit {
		return targetResult{name, true, detail}
	}
	return targetResult{name, false, fmt.Sprintf("%s: %s over, %.1f× the limit", detail, millis(got-limit), float64(got)/float64(limit))}
}
