package queue

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// A pid alone cannot tell a crashed owner from an unrelated process that
// later got the same number — and after a reboot a daemon started by
// systemd often gets the very pid its crashed predecessor had. So a claim
// also records a token naming one incarnation of a process: the boot id and
// the process start time. Without /proc (not Linux) the token is empty and
// liveness falls back to the pid alone.

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// processToken returns "<boot id>/<start time>" for pid, or "" when /proc
// cannot tell.
func processToken(pid int) string {
	boot := bootID()
	if boot == "" {
		return ""
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is parenthesised and may hold spaces or
	// parentheses, so fields are counted after the last ')': state is
	// field 3, starttime field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return boot + "/" + fields[19]
}

// ownerAlive reports whether the process that claimed a row with this pid
// and token may still be uploading it. When in doubt it says yes: wrongly
// recovering a live owner's row would upload the path twice at once,
// whereas a row kept too long is only late.
func ownerAlive(pid int, token string) bool {
	if pid <= 0 {
		// kill(0, …) and kill(-1, …) address process groups, not an owner.
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if token == "" {
		return true
	}
	now := processToken(pid)
	if now == "" {
		// Raced with the process exiting, or /proc is hidden from us.
		return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	return now == token
}
