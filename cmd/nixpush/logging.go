package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

type logFlags struct {
	format string
	level  string
}

// logFormats are --log-format's values, for help and completion.
var logFormats = []string{"auto", "console", "json"}

func (l *logFlags) add(fs *pflag.FlagSet, defaultLevel string) {
	fs.StringVar(&l.format, "log-format", "auto", "console (human lines), json, or auto: console, with each line's priority for the journal under systemd")
	fs.StringVar(&l.level, "log-level", defaultLevel, "debug, info, warn or error")
	setGroup(fs, groupOutput, "log-format", "log-level")
}

// isTerminal decides between human and machine output: a test's buffer
// or a pipe is not a terminal.
func isTerminal(w io.Writer) bool {
	if c := consoleOf(w); c != nil {
		return c.tty
	}
	return false
}

// toJournal reports whether w is systemd's journal: systemd sets
// $JOURNAL_STREAM to the device and inode of the stream it connected, so
// a process that is a service's own stderr knows to prefix each line
// with its priority ("<3>") and leave the timestamp to the journal.
func toJournal(w io.Writer) bool {
	c := consoleOf(w)
	want := os.Getenv("JOURNAL_STREAM")
	if c == nil || c.file == nil || want == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(c.file.Fd()), &st); err != nil {
		return false
	}
	return want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// logger builds the zap logger; everything it writes goes to w (stderr).
// A person gets one human format, on a terminal or a pipe; JSON only when
// asked; the journal gets each line's priority and no second timestamp.
func (l *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.level)
	if err != nil {
		return nil, usageError("--log-level: %v", err)
	}
	journal := toJournal(w)
	cfg := zap.NewProductionEncoderConfig()
	cfg.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncodeDuration = humanDuration
	var enc zapcore.Encoder
	switch l.format {
	case "json":
		if journal {
			cfg.TimeKey = "" // the journal stamps every line itself
		}
		enc = zapcore.NewJSONEncoder(cfg)
	case "auto", "console":
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		if isTerminal(w) {
			cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("2006-01-02 15:04:05")
		if journal {
			cfg.TimeKey = "" // the journal stamps every line itself
		}
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, usageError("--log-format %q: want console, json or auto", l.format)
	}
	if journal {
		enc = journalEncoder{enc}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}

// humanDuration writes durations as people read them (1.4s, 2m3s), not
// as raw floats of seconds.
func humanDuration(d time.Duration, enc zapcore.PrimitiveArrayEncoder) {
	switch {
	case d >= time.Minute:
		d = d.Round(time.Second)
	case d >= time.Second:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Millisecond)
	}
	enc.AppendString(d.String())
}

// journalEncoder prefixes each line with its syslog priority, which
// journald reads (SyslogLevelPrefix=, on by default) and strips: then
// `journalctl -p err` finds the errors.
type journalEncoder struct{ zapcore.Encoder }

func (e journalEncoder) Clone() zapcore.Encoder { return journalEncoder{e.Encoder.Clone()} }

func (e journalEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	b, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	out := journalBuffers.Get()
	out.AppendString(journalPriority(ent.Level))
	_, _ = out.Write(b.Bytes())
	b.Free()
	return out, nil
}

var journalBuffers = buffer.NewPool()

// journalPriority is sd-daemon(3)'s prefix for a zap level.
func journalPriority(l zapcore.Level) string {
	switch {
	case l >= zapcore.DPanicLevel:
		return "<2>"
	case l >= zapcore.ErrorLevel:
		return "<3>"
	case l >= zapcore.WarnLevel:
		return "<4>"
	case l >= zapcore.InfoLevel:
		return "<6>"
	}
	return "<7>"
}
