package main

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// notifier speaks systemd's sd_notify protocol when the daemon runs as a
// Type=notify service ($NOTIFY_SOCKET set); elsewhere every call is a no-op.
type notifier struct{ log *zap.Logger }

func (n notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify", zap.String("state", state), zap.Error(err))
	}
}

// ready tells systemd the daemon is watching: `systemctl start` returns.
func (n notifier) ready() { n.send(daemon.SdNotifyReady) }

// stopping tells systemd the daemon is shutting down and may take up to
// d to let uploads in flight finish, beyond TimeoutStopSec.
func (n notifier) stopping(d time.Duration) {
	n.send(daemon.SdNotifyStopping)
	n.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (d + 5*time.Second).Microseconds()))
}

// watchdog pings systemd at half the WatchdogSec interval until ctx ends,
// when the unit sets WatchdogSec.
func (n notifier) watchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.send(daemon.SdNotifyWatchdog)
		}
	}
}
