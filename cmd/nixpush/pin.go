package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"nixpush/cache"
	"nixpush/cache/gc"
)

// pinFlags locate the cache pins live in (under nixpush/pins/ in the
// cache itself, so every machine's gc sees them).
type pinFlags struct {
	to      []string
	store   string
	network networkFlags
}

func (f *pinFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.to, "to", nil, "cache URL (repeat it for several caches)")
	fs.StringVar(&f.store, "store", "/", "root of the local Nix store (to resolve ./result)")
	setGroup(fs, groupCache, "to", "store")
	f.network.add(fs)
}

// withCache opens each cache in turn and runs fn on it.
func (f *pinFlags) withCache(cmd *cobra.Command, fn func(cache.Cache) error) error {
	urls, err := cacheURLFlags(f.to)
	if err != nil {
		return err
	}
	for _, u := range urls {
		c, err := f.network.openCache(cmd.Context(), u)
		if err != nil {
			return err
		}
		err = fn(c)
		cache.Close(c)
		if err != nil {
			return err
		}
	}
	return nil
}

func newPinCommand() *cobra.Command {
	f := &pinFlags{}
	cmd := &cobra.Command{
		Use:   "pin --to URL NAME PATH | --to URL --list",
		Short: "keep PATH's closure in the cache whatever gc's age limits say",
	}
	var list bool
	f.add(cmd)
	cmd.Flags().BoolVar(&list, "list", false, "list the pins")
	cmd.RunE = withSignals(func(cmd *cobra.Command, args []string) error {
		if list {
			return f.withCache(cmd, func(c cache.Cache) error {
				pins, err := gc.Pins(cmd.Context(), c)
				if err != nil {
					return err
				}
				names := make([]string, 0, len(pins))
				for n := range pins {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", n, pins[n])
				}
				return nil
			})
		}
		if len(args) != 2 {
			return usageError("pin takes NAME and PATH")
		}
		paths, err := resolvePaths(f.store, args[1:])
		if err != nil {
			return err
		}
		return f.withCache(cmd, func(c cache.Cache) error {
			return gc.Pin(cmd.Context(), c, args[0], paths[0])
		})
	})
	return cmd
}

func newUnpinCommand() *cobra.Command {
	f := &pinFlags{}
	cmd := &cobra.Command{
		Use:   "unpin --to URL NAME",
		Short: "remove a pin; gc may then collect its closure",
	}
	f.add(cmd)
	cmd.RunE = withSignals(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError("unpin takes NAME")
		}
		return f.withCache(cmd, func(c cache.Cache) error {
			return gc.Unpin(cmd.Context(), c, args[0])
		})
	})
	return cmd
}
