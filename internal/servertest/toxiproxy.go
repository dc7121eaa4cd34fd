package servertest

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// Toxiproxy is Shopify's toxiproxy, a real TCP proxy, with its API on
// 127.0.0.1: it puts a network that is slow (latency, bandwidth) or broken
// (stalls, resets, connections cut after N bytes) in front of a server,
// driven through toxiproxy's own Go client.
//
// What it does and does not model, which matters for reading any figure
// taken through it:
//   - latency delays every chunk of data by the set time in one direction;
//     a request and its response cross both, so they take the round trip.
//     Connecting does not: the client's handshake is with the proxy on
//     loopback, so opening a connection costs no round trip here, where a
//     real network charges one (two with TLS).
//   - bandwidth caps each connection on its own, not the link: k
//     connections in parallel get k times the rate.
//
// The binary is toxiproxy-server, installed by scripts/toxiproxy.sh
// (which make deps runs) into GOBIN or GOPATH/bin.
type Toxiproxy struct {
	*Server
	client *toxiproxy.Client
	seq    int // names proxies
}

// toxiproxyBinary is what scripts/toxiproxy.sh installs cmd/server as.
const toxiproxyBinary = "toxiproxy-server"

// NewToxiproxy describes a toxiproxy-server logging under dir; Start runs
// it.
func NewToxiproxy(dir string) *Toxiproxy {
	x := &Toxiproxy{}
	x.Server = &Server{Name: "toxiproxy", Dir: dir, launch: x.launch, readyPath: "/version", readyStatus: http.StatusOK}
	return x
}

// StartToxiproxy runs toxiproxy for the test (MustStart). Call
// RequireToxiproxy first to skip where it is not installed.
func StartToxiproxy(t testing.TB) *Toxiproxy {
	t.Helper()
	return MustStart(t, NewToxiproxy(t.TempDir()))
}

// RequireToxiproxy skips the test when toxiproxy-server is not installed
// (it is no apt package: scripts/toxiproxy.sh builds it). Anything else
// wrong with it fails the test later, in StartToxiproxy.
func RequireToxiproxy(t testing.TB) {
	t.Helper()
	if _, err := toxiproxyBin(); errors.Is(err, ErrNotInstalled) {
		t.Skipf("skipped: %v", err)
	}
}

func toxiproxyBin() (string, error) {
	return binary(toxiproxyBinary, "run scripts/toxiproxy.sh (make deps runs it)")
}

func (x *Toxiproxy) launch(port int) (string, []string, []string, error) {
	bin, err := toxiproxyBin()
	if err != nil {
		return "", nil, nil, err
	}
	// Its default level logs every connection; a bench opens thousands.
	return bin, []string{"-host", "127.0.0.1", "-port", fmt.Sprint(port)}, []string{"LOG_LEVEL=warn"}, nil
}

// Proxy listens on a free port of 127.0.0.1 and forwards every connection
// to upstream (host:port), with no toxic until one is set.
func (x *Toxiproxy) Proxy(upstream string) (*Proxy, error) {
	if x.client == nil {
		x.client = toxiproxy.NewClient(x.Addr)
	}
	x.seq++
	name := fmt.Sprintf("proxy-%d", x.seq)
	p, err := x.client.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		return nil, fmt.Errorf("create proxy to %s: %w", upstream, err)
	}
	return &Proxy{Addr: p.Listen, p: p, toxics: map[string]bool{}}, nil
}
