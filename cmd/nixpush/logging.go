package main

import (
	"io"
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

// isTerminal decides between human and machine output: a test's buffer
// or a pipe is not a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// logger builds the zap logger; everything it writes goes to w (stderr).
func (l *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.level)
	if err != nil {
		return nil, usageError("--log-level: %v", err)
	}
	format := l.format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
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
		return nil, usageError("--log-format %q: want console, json or auto", l.format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}
