package nixstore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
	"nixpush/nixstore"
)

func TestResolve(t *testing.T) {
	s := nixtest.NewStore(t)
	out := s.Build(t, nixtest.WithReference("res"))
	dep, top := out[0], out[1]
	st := open(t, s)

	// A work dir outside the store with result-style links. The logical
	// /nix/store/... targets do not exist on this machine: Resolve must not
	// need them to.
	work := t.TempDir()
	relToDep, err := filepath.Rel(work, s.Real(dep))
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"result":       top,               // absolute, logical
		"result-sub":   top + "/dep-path", // into a store path
		"result-rel":   relToDep,          // relative, physical
		"chain":        "result",          // relative link to a link
		"chain-abs":    filepath.Join(work, "chain"),
		"rootlink":     s.Root,                    // a directory link above the store
		"physical":     s.Real(top) + "/greeting", // a link in the store, not followed
		"dangling":     filepath.Join(work, "nothing-here"),
		"loop1":        "loop2",
		"loop2":        "loop1",
		"self":         "self",
		"outside":      "/etc/passwd",
		"bad-name":     "/nix/store/not-a-store-path",
		"into-bad":     nixstore.StoreDir + "/0000/x",
		"dir-of-links": work, // work/dir-of-links/result -> top
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	w := func(name string) string { return filepath.Join(work, name) }

	for _, tc := range []struct {
		arg, want string
	}{
		{top, top},
		{dep, dep},
		{top + "/dep-path", top},
		{top + "/greeting", top}, // a symlink into dep, but inside top
		{top + "/no/such/file", top},
		{s.Real(top), top},
		{s.Real(top) + "/dep-path", top},
		{s.Real(dep) + "/greeting", dep},
		{w("result"), top},
		{w("result") + "/dep-path", top},
		{w("result-sub"), top},
		{w("result-rel"), dep},
		{w("result-rel") + "/greeting", dep},
		{w("chain"), top},
		{w("chain-abs"), top},
		{w("rootlink") + dep, dep},
		{w("physical"), top},
		{w("dir-of-links") + "/result", top},
	} {
		got, err := st.Resolve(tc.arg)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%s) = %q, %v; want %s", tc.arg, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		arg     string
		wantErr string
		is      error
	}{
		{"/etc/passwd", "not in the Nix store", nil},
		{w("outside"), "not in the Nix store", nil},
		{work, "not in the Nix store", nil},
		{w("does-not-exist"), "", fs.ErrNotExist},
		{w("dangling"), "", fs.ErrNotExist},
		{w("loop1"), "too many levels of symbolic links", nil},
		{w("self") + "/x", "too many levels of symbolic links", nil},
		{w("bad-name"), "not a valid store path name", nil},
		{w("into-bad"), "not a valid store path name", nil},
		{s.Real("/nix/store/xyz"), "not a valid store path name", nil},
	} {
		got, err := st.Resolve(tc.arg)
		if err == nil {
			t.Errorf("Resolve(%s) = %q, want an error", tc.arg, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("Resolve(%s) error = %q, want %q / %v", tc.arg, err, tc.wantErr, tc.is)
		}
		if !strings.Contains(err.Error(), tc.arg) {
			t.Errorf("Resolve(%s) error %q does not name the argument", tc.arg, err)
		}
	}

	t.Run("relative ./result", func(t *testing.T) {
		t.Chdir(work)
		for arg, want := range map[string]string{
			"./result":            top,
			"result":              top,
			"result-rel/greeting": dep,
			"./chain":             top,
		} {
			if got, err := st.Resolve(arg); err != nil || got != want {
				t.Errorf("Resolve(%s) in %s = %q, %v; want %s", arg, work, got, err, want)
			}
		}
	})

	t.Run("root opened through a symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "root-link")
		if err := os.Symlink(s.Root, link); err != nil {
			t.Fatal(err)
		}
		st2, err := nixstore.Open(link)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		for _, arg := range []string{s.Real(top), filepath.Join(link, top), w("result")} {
			if got, err := st2.Resolve(arg); err != nil || got != top {
				t.Errorf("Resolve(%s) = %q, %v; want %s", arg, got, err, top)
			}
		}
	})
}

// TestResolveQuotesBinaryInput: a NUL or control byte in an argument is
// refused with the argument quoted, never echoed raw.
func TestResolveQuotesBinaryInput(t *testing.T) {
	s, err := nixstore.Open(nixtest.NewStore(t).Root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, arg := range []string{"/nix/store/\x00abc", "./result\x1b[2J", "\xff\xfe"} {
		_, err := s.Resolve(arg)
		if err == nil {
			t.Fatalf("Resolve(%q) succeeded", arg)
		}
		if strings.ContainsAny(err.Error(), "\x00\x1b\xff") {
			t.Errorf("Resolve(%q) echoes raw bytes: %q", arg, err)
		}
	}
}
