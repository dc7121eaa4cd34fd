package servertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// startEcho runs a TCP echo server on 127.0.0.1 for the test's life.
func startEcho(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// newProxy starts toxiproxy with one proxy in front of a fresh echo server.
func newProxy(t *testing.T) *Proxy {
	t.Helper()
	RequireToxiproxy(t)
	p, err := StartToxiproxy(t).Proxy(startEcho(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and reads its echo, failing after 10 s.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs from what was sent")
	}
	return time.Since(start)
}

func TestLatencyDelaysEachRoundTrip(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p.Addr)
	roundTrip(t, c, []byte("warm")) // the proxy's upstream connection is made
	const rtt = 80 * time.Millisecond
	if err := p.Latency(rtt); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d := roundTrip(t, c, []byte("ping")); d < rtt {
			t.Errorf("round trip took %v, want at least %v", d, rtt)
		}
	}
	// Setting it again replaces the toxics rather than adding to them.
	if err := p.Latency(2 * rtt); err != nil {
		t.Fatal(err)
	}
	if d := roundTrip(t, dial(t, p.Addr), []byte("ping")); d < 2*rtt {
		t.Errorf("after raising the latency a round trip took %v, want at least %v", d, 2*rtt)
	}
}

func TestBandwidthCapsEachConnection(t *testing.T) {
	p := newProxy(t)
	const rate = 200_000 // bytes/s each way
	if err := p.Bandwidth(rate); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 10_000) // 100 kB: 0.5 s at the cap
	want := time.Duration(len(msg)) * time.Second / rate
	// The toxic sleeps after each chunk, so the last chunk may pass
	// unpaid: allow a fifth below the ideal time.
	if d := roundTrip(t, dial(t, p.Addr), msg); d < want*4/5 {
		t.Errorf("100 kB echoed in %v at a %d B/s cap, want at least %v", d, rate, want*4/5)
	}
}

func TestResetPeerBreaksOpenConnections(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p.Addr)
	roundTrip(t, c, []byte("before"))
	if err := p.ResetPeer(Downstream, 0); err != nil {
		t.Fatal(err)
	}
	// The reset may land before or after the write; either way the
	// connection must end with an error or EOF, not a timeout.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write([]byte("after"))
	_, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open 10 s after reset_peer")
	}
}

func TestStallStopsDataUntilHealed(t *testing.T) {
	p := newProxy(t)
	c := dial(t, p.Addr)
	roundTrip(t, c, []byte("before"))
	if err := p.Stall(Upstream, 0); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during a stall: %d bytes, %v; want a timeout", n, err)
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	// Data sent while stalled is dropped; what is sent after gets through.
	roundTrip(t, dial(t, p.Addr), []byte("healed"))
}

func TestLimitDataCutsTheConnection(t *testing.T) {
	p := newProxy(t)
	if err := p.LimitData(Upstream, 10); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open 10 s after its limit")
	}
	if len(got) > 10 {
		t.Errorf("echoed %d bytes through a 10-byte limit", len(got))
	}
}

func TestDisableRefusesUntilEnabled(t *testing.T) {
	p := newProxy(t)
	if err := p.Disable(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded while the proxy is disabled", p.Addr)
	}
	if err := p.Enable(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dial(t, p.Addr), []byte("back"))
}
