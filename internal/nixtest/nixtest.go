// Package nixtest runs real Nix (Debian's nix-bin, Nix 2.8) against private
// store roots for tests. Nothing here mocks Nix: a test that needs Nix calls
// Require, which fails (never skips) when Nix is missing, so a machine without
// Nix cannot make the suite pass silently.
//
// A private store keeps logical paths under /nix/store while the files live
// under Root/nix/store and the DB under Root/nix/var/nix/db/db.sqlite.
package nixtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nixConfig is passed to every Nix command through NIX_CONFIG.
//   - substituters is empty: there is no internet here, and every command
//     would otherwise wait seconds failing to reach cache.nixos.org.
//   - a store under a different root forces the build sandbox on, so the
//     builder needs /bin/sh and its libraries mounted ("?" = only if present).
const nixConfig = "substituters =\n" +
	"sandbox-paths = /bin /usr /lib /lib64? /lib32? /libx32?\n" +
	"experimental-features = nix-command\n"

// requiredTools are the commands Require insists on.
var requiredTools = []string{"nix-build", "nix-store", "nix"}

// Require fails the test when Nix is not installed.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("real Nix is required but %s not found in PATH: "+
			"run scripts/deps.sh (or apt-get install nix-bin)", strings.Join(missing, ", "))
	}
}

// Env returns the environment for a Nix command: os.Environ() without any
// inherited Nix settings, plus NIX_CONFIG and a fresh HOME and XDG dirs.
// Every call gets new dirs because Nix caches narinfo hits and misses in
// $XDG_CACHE_HOME/nix/binary-cache-v6.sqlite: a miss cached before a push
// would hide the pushed path from a later substitution.
func Env(t testing.TB) []string {
	t.Helper()
	return EnvIn(t.TempDir())
}

// EnvIn is Env with HOME and the XDG dirs under home, for callers without
// a testing.TB (the benchmarks). Inherited nixpush settings are dropped
// too, so a caller's NIXPUSH_STATE_DIR cannot leak into a run.
func EnvIn(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_USER_CONF_FILES", "NIXPUSH_STATE_DIR",
			"HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"NIX_CONFIG="+nixConfig,
		"HOME="+home,
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"),
	)
}

// Command runs name with args under Env and returns stdout and stderr.
// A non-nil error includes the command line and its stderr.
func Command(t testing.TB, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = Env(t)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(),
			fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String(), nil
}

// Store is a private Nix store.
type Store struct {
	Root string // filesystem root; contains nix/store and nix/var/nix/db
}

// NewStore creates and initialises (DB included) a store under t.TempDir().
func NewStore(t testing.TB) *Store {
	t.Helper()
	Require(t)
	s := &Store{Root: filepath.Join(t.TempDir(), "root")}
	// Store paths are read-only; make them writable so the TempDir removal
	// also works for non-root users. Cleanups run last-in first-out, so this
	// runs before the TempDir removal registered above.
	t.Cleanup(func() { makeWritable(s.Root) })
	if _, _, err := s.Run(t, "nix-store", "--init"); err != nil {
		t.Fatalf("init nix store: %v", err)
	}
	return s
}

// Run runs a Nix command (nix-build, nix-store, nix-instantiate, nix ...)
// against this store: "--store Root" goes right after the command name,
// where every Nix 2.8 command accepts it.
func (s *Store) Run(t testing.TB, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return Command(t, name, append([]string{"--store", s.Root}, args...)...)
}

// Build builds a Nix expression and returns its output paths (logical
// /nix/store/... paths), one per derivation the expression yields, in the
// order nix-build prints them (attribute name order for an attrset).
func (s *Store) Build(t testing.TB, expr string) []string {
	t.Helper()
	out, _, err := s.Run(t, "nix-build", "--no-out-link", "-E", expr)
	if err != nil {
		t.Fatalf("nix-build: %v", err)
	}
	paths := strings.Fields(out)
	if len(paths) == 0 {
		t.Fatalf("nix-build printed no paths for %s", expr)
	}
	return paths
}

// Add adds dir (recursively) to the store and returns its store path.
func (s *Store) Add(t testing.TB, dir string) string {
	t.Helper()
	out, _, err := s.Run(t, "nix-store", "--add", dir)
	if err != nil {
		t.Fatalf("nix-store --add: %v", err)
	}
	return strings.TrimSpace(out)
}

// Dump returns the NAR serialisation of a store path.
// nix-store --dump reads the filesystem path it is given and ignores
// --store, so it is pointed at the real path.
func (s *Store) Dump(t testing.TB, path string) []byte {
	t.Helper()
	out, _, err := Command(t, "nix-store", "--dump", s.Real(path))
	if err != nil {
		t.Fatalf("nix-store --dump: %v", err)
	}
	return []byte(out)
}

// Closure returns the runtime closure of paths (nix-store -qR), sorted as
// Nix prints it: dependencies before referrers.
func (s *Store) Closure(t testing.TB, paths ...string) []string {
	t.Helper()
	out, _, err := s.Run(t, "nix-store", append([]string{"-qR"}, paths...)...)
	if err != nil {
		t.Fatalf("nix-store -qR: %v", err)
	}
	return strings.Fields(out)
}

// Real maps a logical store path (/nix/store/...) to its file in this store.
func (s *Store) Real(path string) string {
	return filepath.Join(s.Root, path)
}

// DB is the path of the store's Nix database.
func (s *Store) DB() string {
	return filepath.Join(s.Root, "nix", "var", "nix", "db", "db.sqlite")
}

// Keygen makes a binary cache signing key pair in a temp dir and returns the
// two files and the public key ("name:base64").
func Keygen(t testing.TB, name string) (secFile, pubFile, pub string) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	secFile, pubFile = filepath.Join(dir, name+".sec"), filepath.Join(dir, name+".pub")
	// nix-store opens a store even for key generation; give it a throwaway
	// one rather than touching the machine's /nix/var/nix/db.
	_, _, err := Command(t, "nix-store", "--store", filepath.Join(dir, "store"),
		"--generate-binary-cache-key", name, secFile, pubFile)
	t.Cleanup(func() { makeWritable(filepath.Join(dir, "store")) })
	if err != nil {
		t.Fatalf("generate binary cache key: %v", err)
	}
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatalf("read public key: %v", err)
	}
	return secFile, pubFile, strings.TrimSpace(string(b))
}

// Substitute realises paths into the store at freshRoot using only cacheURL
// as substituter and pubKey as the only trusted key, so Nix verifies the
// NAR hashes and signatures. It returns the combined output ("copying path
// '...' from '...'" per path on success) and the error from Nix.
func Substitute(t testing.TB, freshRoot, cacheURL, pubKey string, paths ...string) (string, error) {
	t.Helper()
	Require(t)
	args := append([]string{"--store", freshRoot, "-r"}, paths...)
	args = append(args,
		"--option", "substituters", cacheURL,
		"--option", "trusted-public-keys", pubKey)
	cmd := exec.CommandContext(t.Context(), "nix-store", args...)
	cmd.Env = Env(t)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { makeWritable(freshRoot) })
	if err != nil {
		return string(out), fmt.Errorf("substitute from %s: %w", cacheURL, err)
	}
	return string(out), nil
}

// makeWritable adds owner write permission to every directory under root.
func makeWritable(root string) {
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if info, err := d.Info(); err == nil {
				_ = os.Chmod(p, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
}
