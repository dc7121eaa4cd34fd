package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"nixpush/nixconf"
	"nixpush/use"
)

// useCommand is `nixpush use URL --key KEY`: the consumer's end of the
// cache. It configures this machine's Nix to substitute from the cache.
type useCommand struct {
	key                   string
	user, netrc, nixos, j bool
}

func newUseCommand() *cobra.Command {
	c := &useCommand{}
	cmd := &cobra.Command{
		Use:   "use URL --key KEY|FILE [--user] [--netrc] [--nixos]",
		Short: "configure this machine's Nix to substitute from a cache",
		Long: "Adds URL to extra-substituters and KEY to extra-trusted-public-keys in nix.conf\n" +
			"(the system's, or the user's with --user), idempotently, keeping every other line.\n" +
			"With --netrc, the login goes to Nix's netrc file: the user from the URL (https://LOGIN@host),\n" +
			"the password from $NIXPUSH_NETRC_PASSWORD (or the URL).",
		Example: `  nixpush use https://cache.example.org --key mycache-1:BASE64...
  nixpush use https://cache.example.org --key mycache-1.pub --user      # your own nix.conf
  NIXPUSH_NETRC_PASSWORD=... nixpush use https://bob@cache.example.org --key mycache-1.pub --netrc
  nixpush use s3://fleet-cache?region=eu-west-1 --key mycache-1.pub --nixos   # print the NixOS snippet`,
		Args: exactlyOneURL,
		RunE: withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringVar(&c.key, "key", "", "the cache's public key (NAME:BASE64) or a file holding it")
	fs.BoolVar(&c.user, "user", false, "edit the user's nix.conf ($XDG_CONFIG_HOME/nix/nix.conf), not the system's")
	fs.BoolVar(&c.netrc, "netrc", false, "write the login for a private http(s) cache to Nix's netrc file")
	fs.BoolVar(&c.nixos, "nixos", false, "print the nix.settings snippet for a NixOS configuration; edit nothing")
	fs.BoolVar(&c.j, "json", false, "print what changed as JSON on stdout")
	return cmd
}

func (c *useCommand) run(cmd *cobra.Command, args []string) error {
	u, err := cacheURLFlag(args[0])
	if err != nil {
		return err
	}
	if c.key == "" {
		return usageError("--key is required: the cache's public key (NAME:BASE64) or a file holding it")
	}
	if c.nixos {
		pub, err := nixconf.ParseKey(c.key)
		if err != nil {
			return usageError("%w", err)
		}
		fmt.Fprint(cmd.OutOrStdout(), use.NixOSSnippet(u.Identity(), pub.String()))
		return nil
	}
	opts := use.Options{URL: args[0], Key: c.key, User: c.user}
	if c.netrc {
		// The password never comes from a flag: it would show in ps.
		opts.Netrc = &use.Netrc{Password: os.Getenv("NIXPUSH_NETRC_PASSWORD")}
	}
	ch, err := use.Run(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if c.j {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(ch)
	}
	ch.Write(cmd.ErrOrStderr())
	return nil
}
