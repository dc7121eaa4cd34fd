package gc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"nixpush/cache"
)

// PinPrefix is where pins live in the cache: one object per pin, named
// "nixpush/pins/<name>", holding the pinned store path and a newline. Nix
// reads only nix-cache-info, *.narinfo, the NARs they name, log/ and
// realisations/, so nothing under nixpush/ ever reaches a client, and
// every machine that collects garbage in the cache sees the same pins.
const PinPrefix = "nixpush/pins/"

// pinName: what may name a pin (it becomes part of an object key), up to
// 200 characters. (The length is checked apart: a bounded repeat of 199
// compiled at every start of every command, 2 ms of a re-run's 50.)
var pinName = pinNameRE{regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)}

type pinNameRE struct{ *regexp.Regexp }

func (r pinNameRE) MatchString(s string) bool { return len(s) <= 200 && r.Regexp.MatchString(s) }

// Pin keeps storePath's closure in the cache, whatever its age, until
// Unpin. Pinning again under the same name moves the pin. The path must be
// in the cache: a pin on nothing protects nothing.
func Pin(ctx context.Context, c cache.Cache, name, storePath string) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("pin name %q: use letters, digits and . _ + - (not first), at most 200", name)
	}
	storePath = cache.StorePathOfRef(storePath)
	ok, err := c.Exists(ctx, cache.NarInfoKey(storePath))
	if err != nil {
		return fmt.Errorf("pin %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("pin %s: %s is not in %s", name, storePath, c)
	}
	if err := c.Put(ctx, PinPrefix+name, strings.NewReader(storePath+"\n"), "text/plain"); err != nil {
		return fmt.Errorf("pin %s: %w", name, err)
	}
	return nil
}

// Unpin removes a pin; removing a pin that does not exist is an error, so
// a typo does not pass silently.
func Unpin(ctx context.Context, c cache.Cache, name string) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("pin name %q is not valid", name)
	}
	ok, err := c.Exists(ctx, PinPrefix+name)
	if err != nil {
		return fmt.Errorf("unpin %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("unpin %s: no such pin in %s", name, c)
	}
	if err := c.Delete(ctx, []string{PinPrefix + name}); err != nil {
		return fmt.Errorf("unpin %s: %w", name, err)
	}
	return nil
}

// Pins returns every pin: name → store path.
func Pins(ctx context.Context, c cache.Cache) (map[string]string, error) {
	var names []string
	err := c.List(ctx, PinPrefix, func(o cache.Object) error {
		names = append(names, strings.TrimPrefix(o.Key, PinPrefix))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	pins := map[string]string{}
	for _, name := range names {
		b, err := cache.ReadSmall(ctx, c, PinPrefix+name, 4096)
		if errors.Is(err, cache.ErrNotFound) {
			continue // unpinned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read pin %s: %w", name, err)
		}
		pins[name] = strings.TrimSpace(string(b))
	}
	return pins, nil
}
