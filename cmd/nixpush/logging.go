package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

type logFlags struct {
	format string
	level  string
}

func (l *logFlags) add(fs *pflag.FlagSet, defaultLevel string) {
	fs.StringVar(&l.format, "log-format", "auto", "console, json, or auto (json when stderr is not a terminal)")
	fs.StringVar(&l.level, "log-level", defaultLevel, "debug, info, warn or error")
}

// stderrIsTerminal decides between human and machine output.
func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// logger builds the zap logger; everything it writes goes to stderr.
func (l *logFlags) logger() (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.level)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--log-level: %w", err)}
	}
	format := l.format
	if format == "auto" {
		format = "json"
		if stderrIsTerminal() {
			format = "console"
		}
	}
	cfg := zap.NewProductionEncoderConfig()
	cfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, &exitError{code: 2, err: fmt.Errorf("--log-format %q: want console, json or auto", l.format)}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), level)), nil
}
