package servertest

import "testing"

// MustStart starts s for the test, failing it when s cannot start, and
// stops s when the test ends; a failed test shows the server's log.
func MustStart[S interface {
	Start() error
	server() *Server
}](t testing.TB, s S) S {
	t.Helper()
	srv := s.server()
	if err := s.Start(); err != nil {
		t.Fatalf("start %s: %v", srv.Name, err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", srv.Name, srv.Log())
		}
	})
	return s
}

// MustFreeze freezes s (Server.Freeze) for the rest of the test: the
// test's cleanup thaws it, before the cleanups registered earlier run,
// which may need it to answer.
func MustFreeze(t testing.TB, s interface {
	Freeze() error
	Thaw()
}) {
	t.Helper()
	if err := s.Freeze(); err != nil {
		t.Errorf("freeze: %v", err)
		return
	}
	t.Cleanup(s.Thaw)
}
