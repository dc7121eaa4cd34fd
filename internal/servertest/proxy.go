package servertest

import (
	"fmt"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// Direction is the way data flows through the proxy that a toxic acts on.
type Direction string

const (
	// Upstream is client → server: requests and uploaded bodies.
	Upstream Direction = "upstream"
	// Downstream is server → client: responses.
	Downstream Direction = "downstream"
)

// Proxy is one toxiproxy proxy. Each Set-like method replaces the toxic
// of its kind and direction that an earlier call set, so a benchmark can
// change the round trip without restarting anything. Toxics act on data
// sent after they are set, on new and open connections alike.
type Proxy struct {
	Addr   string // 127.0.0.1:PORT to connect to instead of the upstream
	p      *toxiproxy.Proxy
	toxics map[string]bool // names of the toxics set, for Heal
}

// setToxic adds the toxic kind in direction dir, replacing one set before.
func (p *Proxy) setToxic(kind string, dir Direction, attrs toxiproxy.Attributes) error {
	name := kind + "_" + string(dir)
	if p.toxics[name] {
		if err := p.p.RemoveToxic(name); err != nil {
			return fmt.Errorf("remove toxic %s: %w", name, err)
		}
		delete(p.toxics, name)
	}
	if _, err := p.p.AddToxic(name, kind, string(dir), 1, attrs); err != nil {
		return fmt.Errorf("add toxic %s: %w", name, err)
	}
	p.toxics[name] = true
	return nil
}

// Latency delays data by half of rtt in each direction, so a request and
// its response take rtt more than they would without the proxy. Opening a
// connection does not (see Toxiproxy).
func (p *Proxy) Latency(rtt time.Duration) error {
	half := rtt.Milliseconds() / 2
	for _, dir := range []Direction{Upstream, Downstream} {
		if err := p.setToxic("latency", dir, toxiproxy.Attributes{"latency": half}); err != nil {
			return err
		}
	}
	return nil
}

// Bandwidth caps each connection at bytesPerSec in each direction.
// toxiproxy takes the rate in KB/s of 1,000 bytes; it is rounded down
// (1 KB/s at least).
func (p *Proxy) Bandwidth(bytesPerSec int64) error {
	rate := max(1, bytesPerSec/1000)
	for _, dir := range []Direction{Upstream, Downstream} {
		if err := p.setToxic("bandwidth", dir, toxiproxy.Attributes{"rate": rate}); err != nil {
			return err
		}
	}
	return nil
}

// Stall stops all data in direction dir (it is dropped, as a black-holed
// link would lose it) and closes the connection after closeAfter, or
// never when closeAfter is 0. Heal or Remove ends it.
func (p *Proxy) Stall(dir Direction, closeAfter time.Duration) error {
	return p.setToxic("timeout", dir, toxiproxy.Attributes{"timeout": closeAfter.Milliseconds()})
}

// ResetPeer resets (TCP RST) connections after, or at once when after is
// 0: new connections are reset as they come too, until Heal or Remove.
func (p *Proxy) ResetPeer(dir Direction, after time.Duration) error {
	return p.setToxic("reset_peer", dir, toxiproxy.Attributes{"timeout": after.Milliseconds()})
}

// LimitData closes each connection once n bytes have gone through it in
// direction dir: an upload cut off midway.
func (p *Proxy) LimitData(dir Direction, n int64) error {
	return p.setToxic("limit_data", dir, toxiproxy.Attributes{"bytes": n})
}

// Remove removes the toxic kind ("latency", "bandwidth", "timeout",
// "reset_peer", "limit_data") in direction dir, if set.
func (p *Proxy) Remove(kind string, dir Direction) error {
	name := kind + "_" + string(dir)
	if !p.toxics[name] {
		return nil
	}
	if err := p.p.RemoveToxic(name); err != nil {
		return fmt.Errorf("remove toxic %s: %w", name, err)
	}
	delete(p.toxics, name)
	return nil
}

// Heal removes every toxic: the proxy forwards at full speed again.
func (p *Proxy) Heal() error {
	for name := range p.toxics {
		if err := p.p.RemoveToxic(name); err != nil {
			return fmt.Errorf("remove toxic %s: %w", name, err)
		}
		delete(p.toxics, name)
	}
	return nil
}

// Disable closes every connection and refuses new ones (the port stops
// listening) until Enable: a server gone away.
func (p *Proxy) Disable() error {
	if err := p.p.Disable(); err != nil {
		return fmt.Errorf("disable proxy: %w", err)
	}
	return nil
}

// Enable listens again on the same address.
func (p *Proxy) Enable() error {
	if err := p.p.Enable(); err != nil {
		return fmt.Errorf("enable proxy: %w", err)
	}
	return nil
}
