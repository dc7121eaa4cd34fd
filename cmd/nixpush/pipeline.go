package main

import (
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"nixpush/drainer"
	"nixpush/queue"
)

// drainFlags configure the queue → cache half of the pipeline.
type drainFlags struct {
	stateDir        string
	maxAttempts     int
	shutdownTimeout time.Duration
}

func (d *drainFlags) add(fs *pflag.FlagSet, defaultAttempts int) {
	addStateDirFlag(fs, &d.stateDir)
	fs.IntVar(&d.maxAttempts, "max-attempts", defaultAttempts, "transient failures before a path is marked failed")
	fs.DurationVar(&d.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long uploads in flight may finish")
}

// drainer wires a queue to a target's uploader.
func (d *drainFlags) drainer(t *target, q *queue.Queue, only func() []string, log *zap.Logger) *drainer.Drainer {
	return &drainer.Drainer{
		Queue:           q,
		Uploader:        t.uploader,
		Filter:          t.filter,
		MaxAttempts:     d.maxAttempts,
		Only:            only,
		Log:             log.Named("drainer"),
		Retry:           drainer.DefaultRetry,
		ShutdownTimeout: d.shutdownTimeout,
	}
}
