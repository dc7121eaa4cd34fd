package main

// Tests of nixpush as a systemd service: the sd_notify protocol spoken to
// a socket the test owns, the shipped unit checked by systemd-analyze, the
// Nix packaging parsed by Nix, the Prometheus endpoint scraped while real
// Nix builds, and the daemon started with exactly the unit's ExecStart.

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/internal/nixtest"
)

// sdMsg is one assignment received on the notify socket.
type sdMsg struct {
	text string
	at   time.Time
}

// listenNotify creates a NOTIFY_SOCKET in a temp dir, as systemd does for
// a Type=notify service, and delivers every assignment it receives.
func listenNotify(t *testing.T) (path string, msgs <-chan sdMsg) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan sdMsg, 4096)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for _, a := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
				select {
				case ch <- sdMsg{text: a, at: now}:
				default: // a test that stopped reading has its answer
				}
			}
		}
	}()
	return path, ch
}

// nextNotify returns the next assignment for which want holds, and what
// arrived before it; it fails the test after timeout.
func nextNotify(t *testing.T, msgs <-chan sdMsg, timeout time.Duration, what string, want func(string) bool) (sdMsg, []sdMsg) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var skipped []sdMsg
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", what)
			}
			if want(m.text) {
				return m, skipped
			}
			skipped = append(skipped, m)
		case <-timer.C:
			var got []string
			for _, m := range skipped[max(0, len(skipped)-10):] {
				got = append(got, m.text)
			}
			t.Fatalf("no %s on NOTIFY_SOCKET within %s (%d other messages, the last: %q)", what, timeout, len(skipped), got)
		}
	}
}

func sdIs(s string) func(string) bool { return func(m string) bool { return m == s } }

// TestServiceSdNotify: under Type=notify with WatchdogSec, the daemon says
// READY=1 once it watches (a path built right after is pushed), pings
// WATCHDOG=1 at half of WATCHDOG_USEC, and on SIGTERM says STOPPING=1,
// asks for more stop time (EXTEND_TIMEOUT_USEC covering
// --shutdown-timeout) and exits 0.
func TestServiceSdNotify(t *testing.T) {
	t.Parallel()
	store := nixtest.NewStore(t)
	cache := filepath.Join(t.TempDir(), "cache")
	sock, msgs := listenNotify(t)
	const watchdog = 400 * time.Millisecond
	const shutdownTimeout = 3 * time.Second
	p := startProc(t, "daemon", procEnv(t, "NOTIFY_SOCKET="+sock, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds())),
		"watch-store", "--store", store.Root, "--to", "file://"+cache,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--log-format", "json",
		"--shutdown-timeout", shutdownTimeout.String())

	ready, before := nextNotify(t, msgs, 30*time.Second, "READY=1", sdIs("READY=1"))
	for _, m := range before {
		if m.text != "WATCHDOG=1" {
			t.Errorf("before READY=1 the daemon sent %q", m.text)
		}
	}
	// READY=1 means the watcher's mark is set: what is built now is pushed.
	dir := filepath.Join(t.TempDir(), "svc-notify-after-ready")
	writeFile(t, filepath.Join(dir, "data"), []byte("built after READY=1\n"), 0o644)
	added := store.Add(t, dir)

	// The watchdog pings at half the interval: 4 gaps average ~200 ms.
	// (Pinging every 400 ms would let systemd kill the unit at any delay.)
	// Anything but WATCHDOG=1 in between, a second READY=1 say, fails.
	var pings []time.Time
	for len(pings) < 5 {
		m, other := nextNotify(t, msgs, 2*time.Second, "WATCHDOG=1", sdIs("WATCHDOG=1"))
		if len(other) > 0 {
			t.Errorf("between watchdog pings the daemon sent %d other messages: %q", len(other), other[0].text)
		}
		pings = append(pings, m.at)
	}
	if pings[0].Sub(ready.at) > watchdog {
		t.Errorf("first watchdog ping after READY=1 came %s later, want < %s", pings[0].Sub(ready.at), watchdog)
	}
	avg := pings[len(pings)-1].Sub(pings[0]) / time.Duration(len(pings)-1)
	if avg < watchdog/4 || avg > watchdog*3/4 {
		t.Errorf("watchdog pings every %s on average, want about %s (half of WATCHDOG_USEC=%s)", avg, watchdog/2, watchdog)
	}

	p.waitFor(30*time.Second, "the path built after READY=1 to be pushed", func() bool {
		_, err := os.Stat(filepath.Join(cache, hashPart(added)+".narinfo"))
		return err == nil
	})

	p.signal(syscall.SIGTERM)
	_, other := nextNotify(t, msgs, 10*time.Second, "STOPPING=1", sdIs("STOPPING=1"))
	for _, m := range other {
		if m.text != "WATCHDOG=1" {
			t.Errorf("before STOPPING=1 the daemon sent %q", m.text)
		}
	}
	ext, _ := nextNotify(t, msgs, 10*time.Second, "EXTEND_TIMEOUT_USEC=...", func(m string) bool {
		return strings.HasPrefix(m, "EXTEND_TIMEOUT_USEC=")
	})
	usec, err := strconv.ParseInt(strings.TrimPrefix(ext.text, "EXTEND_TIMEOUT_USEC="), 10, 64)
	if err != nil || usec < shutdownTimeout.Microseconds() {
		t.Errorf("%q: want at least --shutdown-timeout (%d µs)", ext.text, shutdownTimeout.Microseconds())
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("after SIGTERM: exit %d, want 0", code)
	}
}

// TestSystemdUnitVerifies: systemd-analyze verify accepts the shipped unit
// (with ExecStart pointing at the binary under test) without a word about
// it, and the unit has the settings the design relies on.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is required (scripts/deps.sh installs the systemd package): %v", err)
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "/usr/local/bin/nixpush"
	if !bytes.Contains(b, []byte("ExecStart="+shipped+" ")) {
		t.Fatalf("unit's ExecStart does not run %s", shipped)
	}
	unit := filepath.Join(t.TempDir(), "nixpush.service")
	writeFile(t, unit, bytes.ReplaceAll(b, []byte(shipped), []byte(nixpushBin)), 0o644)
	cmd := exec.CommandContext(t.Context(), "systemd-analyze", "verify", unit)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, line := range readLines(stdout.String() + "\n" + stderr.String()) {
		if strings.Contains(line, "nixpush.service") || strings.Contains(line, unit) || strings.Contains(line, nixpushBin) {
			t.Errorf("systemd-analyze verify says about the unit: %s", line)
		} else {
			t.Logf("systemd-analyze verify (not about the unit): %s", line)
		}
	}

	lines := readUnit(t, unit)
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
		"StateDirectory": "nixpush", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
		// Usage errors and errors no restart can fix (exitUsage, exitPermanent).
		"RestartPreventExitStatus": fmt.Sprintf("%d %d", exitUsage, exitPermanent),
	}
	for key, v := range want {
		got := unitValues(lines, "Service", key)
		if len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want exactly one %s=%s", key, got, key, v)
		}
	}
	if got := unitValues(lines, "Service", "WatchdogSec"); len(got) != 1 {
		t.Errorf("[Service] WatchdogSec = %q: the daemon pings the watchdog, the unit should arm it", got)
	}

	// Every credential ExecStart reads is loaded, and the state directory
	// it is given is the one systemd creates.
	creds := map[string]bool{}
	for _, lc := range unitValues(lines, "Service", "LoadCredential") {
		name, src, ok := strings.Cut(lc, ":")
		if !ok || name == "" || !filepath.IsAbs(src) {
			t.Errorf("LoadCredential=%s: want NAME:/absolute/path", lc)
		}
		creds[name] = true
	}
	if len(creds) == 0 {
		t.Errorf("unit has no LoadCredential=: the signing key must arrive as a credential")
	}
	execStart := unitValues(lines, "Service", "ExecStart")
	for _, m := range regexp.MustCompile(`\$\{CREDENTIALS_DIRECTORY\}/([^\s/]+)`).FindAllStringSubmatch(strings.Join(execStart, " "), -1) {
		if !creds[m[1]] {
			t.Errorf("ExecStart reads credential %q, which no LoadCredential= provides", m[1])
		}
	}
	if !strings.Contains(strings.Join(execStart, " "), "--state-dir ${STATE_DIRECTORY}") {
		t.Errorf("ExecStart %q does not keep the queue in ${STATE_DIRECTORY}", execStart)
	}
}

// TestServiceNixFilesParse: the Nix packaging parses, and the NixOS
// module starts the daemon as the unit file does.
func TestServiceNixFilesParse(t *testing.T) {
	t.Parallel()
	nixtest.Require(t)
	// A throwaway store: nothing here may touch the machine's Nix DB.
	storeRoot := filepath.Join(t.TempDir(), "store")
	for _, f := range []string{"package.nix", "module.nix", "default.nix"} {
		out, _, err := nixtest.Command(t, "nix-instantiate", "--store", storeRoot, "--parse", filepath.Join("../../nix", f))
		if err != nil {
			t.Errorf("nix/%s does not parse: %v", f, err)
		} else if strings.TrimSpace(out) == "" {
			t.Errorf("nix-instantiate --parse nix/%s printed nothing", f)
		}
	}

	module, err := os.ReadFile("../../nix/module.nix")
	if err != nil {
		t.Fatal(err)
	}
	// Each ExecStart argument pair of the unit is in the module's command.
	args := unitExecStart(t, map[string]string{"STATE_DIRECTORY": `\${STATE_DIRECTORY}`, "CREDENTIALS_DIRECTORY": `\${CREDENTIALS_DIRECTORY}`})
	if !bytes.Contains(module, []byte("/bin/nixpush "+args[0])) {
		t.Errorf("module.nix does not run nixpush %s", args[0])
	}
	for i := 1; i+1 < len(args); i += 2 {
		if pair := args[i] + " " + args[i+1]; !bytes.Contains(module, []byte(`"`+pair+`"`)) {
			t.Errorf("module.nix ExecStart lacks %q, which the unit passes", pair)
		}
	}
	// Every [Service] setting of the unit is set by the module too.
	for _, l := range readUnit(t, unitFile) {
		if l.section == "Service" && !regexp.MustCompile(`(?m)^\s*`+l.key+`\s*=`).Match(module) {
			t.Errorf("module.nix serviceConfig has no %s (unit line %d: %s=%s)", l.key, l.line, l.key, l.value)
		}
	}
}

// startMetricsDaemon starts watch-store on store pushing to cache with
// the metrics endpoint on a free port, and waits until /metrics answers:
// by then the watcher's mark is set.
func startMetricsDaemon(t *testing.T, store *nixtest.Store, cache string, extra ...string) (*proc, string) {
	t.Helper()
	addr := svcFreeAddr(t)
	p := startProc(t, "daemon", procEnv(t), append([]string{"watch-store", "--store", store.Root, "--to", "file://" + cache,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--log-format", "json", "--metrics-addr", addr}, extra...)...)
	p.waitFor(30*time.Second, "/metrics to answer on "+addr, func() bool {
		_, err := svcScrape(addr)
		return err == nil
	})
	return p, addr
}

// TestServiceMetrics: while real Nix builds, /metrics counts the pushed
// paths, their bytes, the queue's done rows, the latencies and the last
// success, and /healthz says healthy.
func TestServiceMetrics(t *testing.T) {
	t.Parallel()
	store := nixtest.NewStore(t)
	cache := filepath.Join(t.TempDir(), "cache")
	start := time.Now()
	p, addr := startMetricsDaemon(t, store, cache)

	m, err := svcScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"nixpush_paths_pushed_total", "nixpush_bytes_pushed_total", `nixpush_queue_items{state="done"}`, `nixpush_queue_items{state="pending"}`} {
		if v, ok := m[s]; !ok || v != 0 {
			t.Errorf("before any build: %s = %v (present %v), want 0", s, v, ok)
		}
	}

	paths := fibOutputs(t, store, "svc-metrics", 4)
	n := float64(len(paths))
	p.waitFor(30*time.Second, fmt.Sprintf("nixpush_paths_pushed_total to reach %v", n), func() bool {
		m, err = svcScrape(addr)
		return err == nil && m["nixpush_paths_pushed_total"] >= n
	})
	// The counter moves as each path is pushed, the queue row when the
	// batch's outcomes commit: give the commit a moment.
	p.waitFor(5*time.Second, "the queue's done rows to match", func() bool {
		m, err = svcScrape(addr)
		return err == nil && m[`nixpush_queue_items{state="done"}`] == n
	})
	if got := m["nixpush_paths_pushed_total"]; got != n {
		t.Errorf("nixpush_paths_pushed_total = %v, want %v (one per output)", got, n)
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(m)), func(s string) bool { return strings.HasPrefix(s, "nixpush_build_info{") && m[s] == 1 }) {
		t.Errorf("no nixpush_build_info 1 among the metrics")
	}
	for _, s := range []string{"pending", "uploading", "failed", "skipped"} {
		if got := m[`nixpush_queue_items{state="`+s+`"}`]; got != 0 {
			t.Errorf("nixpush_queue_items{state=%q} = %v, want 0", s, got)
		}
	}
	// Each path's compressed NAR, as its narinfo says (paths with equal
	// contents share one NAR file, but each counts).
	var narBytes int64
	for _, p := range paths {
		ni, err := os.ReadFile(filepath.Join(cache, hashPart(p)+".narinfo"))
		if err != nil {
			t.Fatalf("pushed_total says done, but: %v", err)
		}
		size := regexp.MustCompile(`(?m)^FileSize: (\d+)$`).FindSubmatch(ni)
		if size == nil {
			t.Fatalf("narinfo of %s has no FileSize:\n%s", p, ni)
		}
		n, _ := strconv.ParseInt(string(size[1]), 10, 64)
		narBytes += n
	}
	if got := m["nixpush_bytes_pushed_total"]; got <= 0 || got != float64(narBytes) {
		t.Errorf("nixpush_bytes_pushed_total = %v, want %d (the FileSize of every pushed path)", got, narBytes)
	}
	last := m["nixpush_last_success_timestamp_seconds"]
	if now := float64(time.Now().Unix()); last < float64(start.Unix()) || last > now+1 {
		t.Errorf("nixpush_last_success_timestamp_seconds = %v, want between %d and %v", last, start.Unix(), now)
	}
	if got := m["nixpush_detection_latency_seconds_count"]; got < n {
		t.Errorf("nixpush_detection_latency_seconds_count = %v, want at least %v", got, n)
	}
	if got := m["nixpush_upload_duration_seconds_count"]; got <= 0 {
		t.Errorf("nixpush_upload_duration_seconds_count = %v, want > 0", got)
	}
	for s, v := range m {
		if strings.HasPrefix(s, "nixpush_failures_total") && v != 0 {
			t.Errorf("%s = %v with a working cache", s, v)
		}
	}

	h, err := svcGetHealth(addr)
	if err != nil {
		t.Fatal(err)
	}
	if h.code != 200 || h.body["healthy"] != true || len(h.body) != 1 {
		t.Errorf("/healthz = %d %s, want 200 {\"healthy\":true}", h.code, h.raw)
	}
}

// TestServiceMetricsUnhealthy: with a cache that cannot be written (its
// file system is full), /healthz turns 503 once the failures last longer
// than --unhealthy-after, transient failures are counted, and /healthz
// recovers without a restart once space is free.
func TestServiceMetricsUnhealthy(t *testing.T) {
	t.Parallel()
	store := nixtest.NewStore(t)
	cache := filepath.Join(t.TempDir(), "cache")
	junk := fullCache(t, cache)

	p, addr := startMetricsDaemon(t, store, cache, "--unhealthy-after", "1s")
	if h, err := svcGetHealth(addr); err != nil || h.code != 200 || h.body["healthy"] != true {
		t.Fatalf("/healthz before any upload = %d %s (%v), want 200 healthy", h.code, h.raw, err)
	}

	dir := filepath.Join(t.TempDir(), "svc-unhealthy")
	writeFile(t, filepath.Join(dir, "data"), []byte("nowhere to go\n"), 0o644)
	path := store.Add(t, dir)
	built := time.Now()

	var h svcHealth
	var err error
	p.waitFor(10*time.Second, "/healthz to turn 503", func() bool {
		h, err = svcGetHealth(addr)
		return err == nil && h.code == 503
	})
	// The first failure follows the build, so 503 cannot come sooner
	// than --unhealthy-after (less the few ms nix-store takes to exit).
	if after := time.Since(built); after < 900*time.Millisecond {
		t.Errorf("/healthz unhealthy %s after the build, before --unhealthy-after 1s", after.Round(time.Millisecond))
	}
	if h.body["healthy"] != false {
		t.Errorf("/healthz 503 body %s, want \"healthy\":false", h.raw)
	}
	if s, ok := h.body["cache_failing_for_seconds"].(float64); !ok || s < 1 {
		t.Errorf("/healthz 503 body %s, want cache_failing_for_seconds >= 1", h.raw)
	}
	m, err := svcScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := m[`nixpush_failures_total{kind="transient"}`]; got <= 0 {
		t.Errorf(`nixpush_failures_total{kind="transient"} = %v, want > 0`, got)
	}
	if got := m["nixpush_paths_pushed_total"]; got != 0 {
		t.Errorf("nixpush_paths_pushed_total = %v with a full cache", got)
	}
	if got := m[`nixpush_queue_items{state="pending"}`]; got != 1 {
		t.Errorf(`nixpush_queue_items{state="pending"} = %v, want 1 (retrying)`, got)
	}

	if err := os.Remove(junk); err != nil {
		t.Fatal(err)
	}
	p.waitFor(30*time.Second, "/healthz to recover once space is free", func() bool {
		h, err = svcGetHealth(addr)
		return err == nil && h.code == 200
	})
	if h.body["healthy"] != true {
		t.Errorf("/healthz after recovery: %s", h.raw)
	}
	if _, err := os.Stat(filepath.Join(cache, hashPart(path)+".narinfo")); err != nil {
		t.Errorf("healthy again but %s is not in the cache: %v", path, err)
	}
}

// TestServiceStartedLikeUnit: the daemon started with exactly the unit's
// ExecStart arguments (systemd's ${STATE_DIRECTORY} and credential
// directory in temp dirs) and a config file made from the example pushes
// what Nix builds, signed with the credential's key; `nixpush status` and
// the metrics endpoint the config file asks for both show it, and a
// substituting Nix accepts it.
func TestServiceStartedLikeUnit(t *testing.T) {
	t.Parallel()
	store := nixtest.NewStore(t)
	sec, _, pub := nixtest.Keygen(t, "svc-unit-1")
	cache := filepath.Join(t.TempDir(), "cache")
	stateDir := filepath.Join(t.TempDir(), "state")
	credDir := filepath.Join(t.TempDir(), "credentials")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(sec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(credDir, "signing-key"), key, 0o400)

	// The example config, pointed at the test's cache and a free port.
	example, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	addr := svcFreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cfgText := string(example)
	for old, repl := range map[string]string{
		`to = "file:///srv/cache?compression=zstd"`: fmt.Sprintf(`to = "file://%s?compression=zstd"`, cache),
		`metrics-addr = "9464"`:                     fmt.Sprintf(`metrics-addr = %q`, port),
	} {
		if !strings.Contains(cfgText, old) {
			t.Fatalf("%s no longer has the line %s", exampleConfig, old)
		}
		cfgText = strings.Replace(cfgText, old, repl, 1)
	}
	cfgFile := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfgFile, []byte(cfgText), 0o644)

	args := unitExecStart(t, map[string]string{"STATE_DIRECTORY": stateDir, "CREDENTIALS_DIRECTORY": credDir})
	if args[0] != "watch-store" {
		t.Fatalf("unit runs nixpush %s, want watch-store", args[0])
	}
	if got := svcFlagValue(args, "config"); got != defaultConfigFile {
		t.Errorf("unit's --config %q, want the default %s", got, defaultConfigFile)
	}
	if got := svcFlagValue(args, "log-format"); got != "" {
		t.Errorf("unit's --log-format %q, want none (auto: human lines, each with its priority for the journal)", got)
	}
	args = append(svcReplaceFlag(t, args, "config", cfgFile), "--store", store.Root)
	p := startProc(t, "daemon", procEnv(t, "STATE_DIRECTORY="+stateDir, "CREDENTIALS_DIRECTORY="+credDir), args...)
	p.waitFor(30*time.Second, "/metrics on the config file's metrics-addr "+port, func() bool {
		_, err := svcScrape(addr)
		return err == nil
	})

	paths := fibOutputs(t, store, "svc-unit", 3)
	var st statusReport
	p.waitFor(30*time.Second, "status --json to show every output done", func() bool {
		st = readStatus(t, stateDir)
		return st.Done == len(paths)
	})
	if len(st.Queues) != 1 || st.Queues[0].Cache != "file://"+cache || st.Queues[0].Done != len(paths) {
		t.Errorf("status --json queues %+v, want one queue for file://%s with %d done", st.Queues, cache, len(paths))
	}
	if st.Pending+st.Uploading+st.Failed+st.Skipped != 0 {
		t.Errorf("status --json %+v, want only done rows", st)
	}

	m, err := svcScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	n := float64(len(paths))
	if got := m[`nixpush_queue_items{state="done"}`]; got != n {
		t.Errorf(`nixpush_queue_items{state="done"} = %v, want %v`, got, n)
	}
	if got := m["nixpush_paths_pushed_total"]; got != n {
		t.Errorf("nixpush_paths_pushed_total = %v, want %v", got, n)
	}

	// Signed with the credential's key, compressed as the config's URL says.
	for _, p := range paths {
		ni, err := os.ReadFile(filepath.Join(cache, hashPart(p)+".narinfo"))
		if err != nil {
			t.Fatalf("narinfo of %s: %v", p, err)
		}
		if !strings.Contains(string(ni), "\nSig: svc-unit-1:") || !strings.Contains(string(ni), "\nCompression: zstd\n") {
			t.Errorf("narinfo of %s is not signed with the credential's key or not zstd:\n%s", p, ni)
		}
	}
	out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+cache, pub, paths...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// systemctl stop: SIGTERM, exit 0; stderr gets log lines only.
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("after SIGTERM: exit %d, want 0", code)
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("the daemon wrote to stdout, which is for what a user asks for:\n%s", out)
	}
	for _, want := range []string{"watching", "stopped"} {
		if !regexp.MustCompile(`(?m)^[0-9-]+ [0-9:]+\tINFO\t` + want + `(\t|$)`).MatchString(p.stderr.String()) {
			t.Errorf("log has no %q line:\n%s", want, p.stderr.String())
		}
	}
}
