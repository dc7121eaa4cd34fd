package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// report is docs/reliability.md: how the suite was run and its table.
func report(outcomes []outcome, total time.Duration, only string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	cmd := "make faults"
	if only != "" {
		cmd = fmt.Sprintf("go run ./tools/faults -write -run %s", only)
	}
	passed := 0
	for _, o := range outcomes {
		if o.Pass {
			passed++
		}
	}
	p("# Reliability: fault injection")
	p("")
	p("`make faults` (`go run ./tools/faults -write`) runs nixpush, built from this tree, as a user would")
	p("(`nixpush push`, `nixpush watch-store`) against real caches on 127.0.0.1 — a file:// directory,")
	p("nginx with WebDAV PUT, versitygw (S3) — while it breaks something: the network through")
	p("toxiproxy, the server (SIGSTOP, restart), the state dir (a full tmpfs, a write lock held by")
	p("another process), nixpush itself (SIGKILL), the store (GC of a path being uploaded), or")
	p("other pushers with other settings on the same cache. Every scenario checks:")
	p("")
	p("- **consistent**, every 200 ms while it runs and at the end: each narinfo's NAR object exists")
	p("  with its FileSize and FileHash, and each reference has a narinfo (read on disk: every cache")
	p("  here is a directory); at the end `nixpush verify --trusted-key` exits 0 as well;")
	p("- **nothing lost**: every path of the pushed closures is in the cache, or its queue row is")
	p("  `skipped` with a reason (a `failed` row is a failure);")
	p("- **no hang**: every process has a deadline; one still running then gets SIGQUIT (its")
	p("  goroutine dump says where it was stuck) and fails the scenario.")
	p("")
	p("Limits of the method, which matter for reading the table:")
	p("")
	p("- toxiproxy and the loopback socket buffers between nixpush and a throttle hold MBs: a")
	p("  client's writes return long before the bytes reach the server. A bandwidth cap only blocks")
	p("  writes once more than that is in flight (bandwidth-collapse pushes 24 MiB for this reason).")
	p("  The S3 backend counts bytes the peer acknowledges as progress (TCP_INFO), so a part whose")
	p("  bytes still drain through a slow proxy is not taken for stalled.")
	p("- The throttling proxy of fleet-s3 (`servertest.S3Proxy`) and the machines share the same 2")
	p("  cores with versitygw: its makespan is CPU-bound, not what a fleet on a real bucket sees.")
	p("- A latency toxic lets go of the data it holds when it is removed or replaced, so a spike")
	p("  shorter than `--http-timeout` delays requests without failing any (latency-spikes holds each")
	p("  spike 3 s against a 2 s timeout).")
	p("- Kill points and the GC moment are random or raced: a run covers some interleavings, not all.")
	p("")
	p("Run: `%s` on %s, %d CPUs, %s: %d of %d scenarios passed in %v.",
		cmd, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(),
		passed, len(outcomes), total.Round(time.Second))
	p("")
	p("| scenario | fault | outcome | checked | duration | notes |")
	p("|---|---|---|---|---|---|")
	for _, o := range outcomes {
		verdict := "pass"
		if !o.Pass {
			verdict = "**FAIL**"
		}
		p("| %s | %s | %s | %s | %.1f s | %s |", o.Name, cell(o.Fault), verdict, cell(o.Checked), o.Duration.Seconds(), cell(o.Notes))
	}
	return b.String()
}

// cell makes s fit in one table cell.
func cell(s string) string {
	s = strings.NewReplacer("|", `\|`, "\n", " ", "\r", "").Replace(s)
	if len(s) > 900 {
		s = s[:900] + "…"
	}
	return s
}
