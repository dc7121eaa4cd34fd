package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"nixpush/pipeline"
	"nixpush/queue"
)

// queueStatus is one queue's part of `status --json`.
type queueStatus struct {
	Cache          string        `json:"cache"`
	File           string        `json:"file"`
	Pending        int           `json:"pending"`
	Uploading      int           `json:"uploading"`
	Done           int           `json:"done"`
	Failed         int           `json:"failed"`
	Skipped        int           `json:"skipped"`
	OldestPending  *time.Time    `json:"oldest_pending,omitempty"`
	LastSuccess    *time.Time    `json:"last_success,omitempty"`
	DoneLastHour   int           `json:"done_last_hour"`
	BytesLastHour  int64         `json:"bytes_last_hour"`
	RecentFailures []itemProblem `json:"recent_failures"`
	Retrying       []itemProblem `json:"retrying"`
	// Error is why this queue file could not be read (damaged, written by
	// a newer nixpush, ...); the other queues are still reported.
	Error string `json:"error,omitempty"`
}

type itemProblem struct {
	Path        string     `json:"path"`
	Error       string     `json:"error"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

// statusReport is `status --json`: totals over every queue at top level.
type statusReport struct {
	Pending   int           `json:"pending"`
	Uploading int           `json:"uploading"`
	Done      int           `json:"done"`
	Failed    int           `json:"failed"`
	Skipped   int           `json:"skipped"`
	Queues    []queueStatus `json:"queues"`
}

func newStatusCommand() *cobra.Command {
	var stateDir string
	var to []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json] [--to CACHE-URL]",
		Short: "show what is queued, in flight, done and failed",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	addStateDirFlag(fs, &stateDir)
	fs.StringArrayVar(&to, "to", nil, "only the queue of this cache (repeatable)")
	fs.BoolVar(&asJSON, "json", false, "print JSON on stdout")
	setGroup(fs, groupCache, "to")
	setGroup(fs, groupOutput, "json")
	cmd.RunE = withSignals(func(cmd *cobra.Command, _ []string) error {
		files, err := selectQueues(stateDir, to)
		if err != nil {
			return err
		}
		now := time.Now()
		report := statusReport{Queues: []queueStatus{}}
		bad := 0
		for _, f := range files {
			qs, err := readQueueStatus(cmd.Context(), f, now)
			if err != nil {
				// One unreadable file must not hide the others.
				qs = queueStatus{File: f, Error: oneLine(err.Error()), RecentFailures: []itemProblem{}, Retrying: []itemProblem{}}
				bad++
			}
			report.Pending += qs.Pending
			report.Uploading += qs.Uploading
			report.Done += qs.Done
			report.Failed += qs.Failed
			report.Skipped += qs.Skipped
			report.Queues = append(report.Queues, qs)
		}
		out := cmd.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(report); err != nil {
				return err
			}
		} else {
			printStatus(out, report, stateDir, now)
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d queue files could not be read (see above)", bad, len(files))
		}
		return nil
	})
	return cmd
}

// selectQueues finds the queue files to report on.
func selectQueues(stateDir string, to []string) ([]string, error) {
	if len(to) == 0 {
		return pipeline.QueueFiles(stateDir)
	}
	var files []string
	for _, t := range to {
		u, err := cacheURLFlag(t)
		if err != nil {
			return nil, err
		}
		f := pipeline.QueueFile(stateDir, u.Identity())
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no queue for %s in %s", u.Identity(), stateDir)
		} else if err != nil {
			return nil, fmt.Errorf("read state dir: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// readQueueStatus reads one queue file without writing anything, so status
// works on a read-only or full state dir, beside a running daemon.
func readQueueStatus(ctx context.Context, file string, now time.Time) (queueStatus, error) {
	q, err := queue.OpenReadOnly(file)
	if err != nil {
		return queueStatus{}, err
	}
	defer q.Close()
	// Counts read from a damaged index would be a confident "0 pending":
	// the file is checked before anything it says is reported.
	if err := q.Check(ctx); err != nil {
		return queueStatus{}, err
	}
	cache, _, err := q.GetMeta(ctx, pipeline.CacheMetaKey)
	if err != nil {
		return queueStatus{}, err
	}
	st, err := q.Status(ctx, now)
	if err != nil {
		return queueStatus{}, err
	}
	qs := queueStatus{
		Cache: cache, File: file,
		Pending: st.Counts[queue.Pending], Uploading: st.Counts[queue.Uploading],
		Done: st.Counts[queue.Done], Failed: st.Counts[queue.Failed], Skipped: st.Counts[queue.Skipped],
		OldestPending: timePtr(st.OldestPending), LastSuccess: timePtr(st.LastSuccess),
		DoneLastHour: st.DoneLastHour, BytesLastHour: st.BytesLastHour,
		RecentFailures: problems(st.RecentFailures), Retrying: problems(st.PendingErrors),
	}
	return qs, nil
}

func problems(items []queue.Item) []itemProblem {
	out := []itemProblem{}
	for _, it := range items {
		out = append(out, itemProblem{Path: it.Path, Error: it.LastError, Attempts: it.Attempts, NextAttempt: timePtr(it.NextAttempt)})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func printStatus(w io.Writer, r statusReport, stateDir string, now time.Time) {
	if len(r.Queues) == 0 {
		fmt.Fprintf(w, "no queues in %s\n", stateDir)
		return
	}
	for _, q := range r.Queues {
		if q.Error != "" {
			fmt.Fprintf(w, "%s\n  UNREADABLE: %s\n", q.File, q.Error)
			continue
		}
		fmt.Fprintf(w, "%s\n  %d pending, %d uploading, %d done, %d failed, %d skipped\n",
			q.Cache, q.Pending, q.Uploading, q.Done, q.Failed, q.Skipped)
		if q.OldestPending != nil {
			fmt.Fprintf(w, "  oldest pending: %s ago\n", now.Sub(*q.OldestPending).Round(time.Second))
		}
		if q.LastSuccess != nil {
			fmt.Fprintf(w, "  last push: %s ago; last hour: %d paths, %s\n",
				now.Sub(*q.LastSuccess).Round(time.Second), q.DoneLastHour, mib(q.BytesLastHour))
		}
		for _, p := range q.Retrying {
			next := ""
			if p.NextAttempt != nil {
				next = fmt.Sprintf(", next try in %s", p.NextAttempt.Sub(now).Round(time.Second))
			}
			fmt.Fprintf(w, "  retrying %s (attempt %d%s): %s\n", p.Path, p.Attempts, next, oneLine(p.Error))
		}
		for _, p := range q.RecentFailures {
			fmt.Fprintf(w, "  failed %s: %s\n", p.Path, oneLine(p.Error))
		}
	}
}
