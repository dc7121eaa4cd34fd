package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nixpush/queue"
)

const queueIntro = "The SQLite queue with a large backlog, through nixpush's own `queue` package in a fresh temp dir. " +
	"Enqueue: 100,000 new store paths into an empty queue, 5,000 per `Queue.Enqueue` call (one transaction each), " +
	"timed over the calls only; CPU is the bench process's (SQLite runs in-process). " +
	"Status: the last run's queue is turned into a realistic mix with `Claim` and `Settle`, closed, and then the real " +
	"binary runs `nixpush status --json --state-dir DIR` on it (DB file `bench.queue.db`: status reads every " +
	"`*.queue.db` in the state dir); its wall time, from exec to exit, is what a user or a monitoring check waits."

// statusRuns is the minimum number of timed status runs.
const statusRuns = 5

// statusCounts is the part of `status --json` the suite checks.
type statusCounts struct {
	Pending, Uploading, Done, Failed, Skipped int
}

// runQueueSuite times Enqueue over -runs fresh queues, then status.
func runQueueSuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("queue")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	paths := syntheticStorePaths(queueRows)
	var enq []enqueueRun
	var stateDir string
	for run := range b.runs {
		stateDir = filepath.Join(scratch, fmt.Sprintf("state-%d", run))
		r, err := timeEnqueue(ctx, filepath.Join(stateDir, "bench.queue.db"), paths)
		if err != nil {
			return nil, err
		}
		logf("queue run %d/%d: enqueued %d paths in %s (%.0f paths/s)", run+1, b.runs, queueRows,
			seconds(r.Wall.Seconds()), queueRows/r.Wall.Seconds())
		enq = append(enq, r)
		if run < b.runs-1 {
			removeAll(stateDir)
		}
	}
	file := filepath.Join(stateDir, "bench.queue.db")
	mix, err := mixQueue(ctx, file, "file:///srv/bench-cache")
	if err != nil {
		return nil, err
	}
	size, err := queueFileSize(file)
	if err != nil {
		return nil, err
	}
	var status []Sample
	env := cleanEnv(filepath.Join(scratch, "home"))
	for range max(statusRuns, b.runs) {
		s, out, err := measure(ctx, b.bin, []string{"status", "--json", "--state-dir", stateDir}, env)
		if err != nil {
			return nil, err
		}
		if err := checkStatus(out); err != nil {
			return nil, err
		}
		logf("queue: status --json %s", millis(s.Wall))
		status = append(status, s)
	}
	steps, err := timeStatusSteps(ctx, file)
	if err != nil {
		return nil, err
	}
	return queueReport(enq, status, mix, steps, size), nil
}

// checkStatus verifies the JSON counts the mix of queueMix.
func checkStatus(out string) error {
	var got statusCounts
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		return fmt.Errorf("status --json: %w: %s", err, tail(out, 500))
	}
	want := statusCounts{Pending: queueRows / 4, Uploading: queueRows / 20, Done: queueRows * 3 / 5,
		Failed: queueRows / 20, Skipped: queueRows / 20}
	if got != want {
		return fmt.Errorf("status --json counts %+v, want %+v", got, want)
	}
	return nil
}

// queueFileSize is the size of the queue file and its -wal and -shm.
func queueFileSize(file string) (int64, error) {
	var size int64
	for _, f := range []string{file, file + "-wal", file + "-shm"} {
		st, err := os.Stat(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("size of queue: %w", err)
		}
		size += st.Size()
	}
	return size, nil
}

// statusSteps is where status time goes, measured in-process (medians
// of statusRuns, wall and the bench process's CPU): Open (quick_check
// and migrations included), Status, Close.
type statusSteps struct {
	Open, Status, Close          time.Duration
	OpenCPU, StatusCPU, CloseCPU time.Duration
}

func timeStatusSteps(ctx context.Context, file string) (statusSteps, error) {
	var wall, cpu [3]latencies
	for range statusRuns {
		var at [4]time.Time
		var used [4]time.Duration
		mark := func(i int) { at[i], used[i] = time.Now(), selfCPU() }
		mark(0)
		q, err := queue.Open(file)
		if err != nil {
			return statusSteps{}, err
		}
		mark(1)
		_, err = q.Status(ctx, time.Now())
		mark(2)
		cerr := q.Close()
		mark(3)
		if err != nil || cerr != nil {
			return statusSteps{}, fmt.Errorf("status steps: %v, %v", err, cerr)
		}
		for i := range 3 {
			wall[i], cpu[i] = append(wall[i], at[i+1].Sub(at[i])), append(cpu[i], used[i+1]-used[i])
		}
	}
	m := func(l latencies) time.Duration { return l.percentile(0.5) }
	return statusSteps{m(wall[0]), m(wall[1]), m(wall[2]), m(cpu[0]), m(cpu[1]), m(cpu[2])}, nil
}

func queueReport(enq []enqueueRun, status []Sample, mix mixTimes, steps statusSteps, size int64) *report {
	r := &report{
		Title: "Queue at scale: 100,000 paths",
		Method: fmt.Sprintf("enqueue %d runs (fresh queue each), status %d runs on the last one; medians",
			len(enq), len(status)),
		Intro: queueIntro,
	}
	var walls, cpus latencies
	for _, e := range enq {
		walls, cpus = append(walls, e.Wall), append(cpus, e.CPU)
	}
	rate := float64(queueRows) / walls.percentile(0.5).Seconds()
	et := &table{Header: []string{"paths", "per call", "wall median (min – max)", "paths/s (median)", "CPU median"}}
	et.add(thousands(queueRows), thousands(queueBatch),
		fmt.Sprintf("%s (%s – %s)", seconds(walls.percentile(0.5).Seconds()), seconds(walls.min().Seconds()), seconds(walls.max().Seconds())),
		thousands(int(rate)), seconds(cpus.percentile(0.5).Seconds()))
	r.Sections = append(r.Sections, section{Title: "Enqueue", Table: et})

	var mixText []string
	for _, m := range queueMix {
		mixText = append(mixText, fmt.Sprintf("%d %% %s", m.share*5, m.what))
	}
	wall, cpu, rss := summarise(status, wallSeconds), summarise(status, cpuSeconds), summarise(status, rssBytes)
	others := summarise(status, othersCores)
	st := &table{Header: []string{"rows", "DB size (with -wal, -shm)", "wall median", "wall min – max",
		"CPU user+sys median", "peak RSS", "others busy"}}
	st.add(thousands(queueRows), megabytes(float64(size)), millis(secondsDuration(wall.Median)),
		millis(secondsDuration(wall.Min))+" – "+millis(secondsDuration(wall.Max)),
		millis(secondsDuration(cpu.Median)), mib(rss.Max), fmt.Sprintf("%.2f cores", others.Median))
	r.Sections = append(r.Sections, section{
		Title: "nixpush status --json",
		Text:  "The mix, by row position: " + strings.Join(mixText, ", ") + ".",
		Table: st,
	})
	ok := wall.Median <= 0.100
	detail := fmt.Sprintf("%s median of %d runs", millis(secondsDuration(wall.Median)), len(status))
	if !ok {
		detail += fmt.Sprintf(", %s over", millis(secondsDuration(wall.Median-0.100)))
	}
	rateOK := rate >= 10_000
	rateDetail := fmt.Sprintf("%s paths/s", thousands(int(rate)))
	if !rateOK {
		rateDetail += fmt.Sprintf(", %.0f %% short", 100*(1-rate/10_000))
	}
	r.Targets = []targetResult{
		{"enqueue ≥ 10,000 paths/s", rateOK, rateDetail},
		{"status --json on 100,000 rows ≤ 100 ms", ok, detail},
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("where status time goes, in-process (medians of %d, wall / CPU): queue.Open %s / %s "+
			"(PRAGMA quick_check and migrations included), Status %s / %s, Close %s / %s (PRAGMA optimize); "+
			"the rest of the CLI's time is process start-up and JSON.", statusRuns,
			millis(steps.Open), millis(steps.OpenCPU), millis(steps.Status), millis(steps.StatusCPU),
			millis(steps.Close), millis(steps.CloseCPU)),
		fmt.Sprintf("making the mix: claiming all %s rows, %s per Claim, took %s; settling them, one Settle per %s, %s.",
			thousands(queueRows), thousands(queueBatch), seconds(mix.Claim.Seconds()), thousands(queueBatch), seconds(mix.Settle.Seconds())),
	)
	return r
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
