package nixstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nix-community/go-nix/pkg/storepath"
)

// maxSymlinks bounds symlink chasing, as the kernel does (ELOOP).
const maxSymlinks = 40

// Resolve turns a command-line argument into the store path that holds it:
// a store path, a file inside one, or a symlink (like ./result) leading to
// either. Symlinks are followed one component at a time against this
// store's root, so ./result pointing at /nix/store/... works for a chroot
// store whose files are not at /nix/store. Validity is not checked here.
func (s *Store) Resolve(arg string) (string, error) {
	// A NUL or a control byte (a script gone wrong) is never a path, and
	// echoed raw it would garble the terminal or the log.
	if strings.ContainsFunc(arg, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) {
		return "", fmt.Errorf("%q is not a path: it holds control or non-UTF-8 bytes", arg)
	}
	p, err := filepath.Abs(arg)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", arg, err)
	}
	for hops := 0; hops <= maxSymlinks; hops++ {
		if sp, ok, err := s.storePathOf(p); ok || err != nil {
			if err != nil {
				return "", fmt.Errorf("%s: %w", arg, err)
			}
			return sp, nil
		}
		next, err := followFirstSymlink(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", arg, err)
		}
		if next == "" {
			return "", fmt.Errorf("%s is not in the Nix store %s", arg, s.RealStoreDir())
		}
		p = next
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", arg)
}

// storePathOf reports the store path containing p, where p is a logical
// (/nix/store/...) or a physical (ROOT/nix/store/...) absolute path.
func (s *Store) storePathOf(p string) (string, bool, error) {
	for _, dir := range []string{StoreDir, s.RealStoreDir()} {
		rest, ok := strings.CutPrefix(p, dir+"/")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if _, err := storepath.FromString(name); err != nil {
			return "", false, fmt.Errorf("not a valid store path name %q: %w", name, err)
		}
		return StoreDir + "/" + name, true, nil
	}
	return "", false, nil
}

// followFirstSymlink replaces the first symlink component of p by its
// target and returns the result, or "" when p has no symlink in it.
func followFirstSymlink(p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("resolve path: %w", err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("resolve path: %w", err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			return filepath.Join(append([]string{target}, parts[i+1:]...)...), nil
		}
		cur = next
	}
	return "", nil
}
