package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"nixpush/doctor"
	"nixpush/uploader/httpcache"
)

// doctorCommand is `nixpush doctor URL [--key KEY] [PATH...]`: why does
// this machine build instead of substituting? One line per check, each
// with a fix; exit 1 when one fails.
type doctorCommand struct {
	key     string
	asJSON  bool
	network networkFlags
}

func newDoctorCommand() *cobra.Command {
	c := &doctorCommand{}
	cmd := &cobra.Command{
		Use:   "doctor URL [--key KEY] [PATH...]",
		Short: "check why this machine builds instead of substituting from a cache",
		Args:  exactlyOneURLThenPaths,
		RunE:  withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringVar(&c.key, "key", "", "the cache's public key (NAME:BASE64) or a file holding it")
	fs.BoolVar(&c.asJSON, "json", false, "print the checks as JSON on stdout")
	c.network.add(fs)
	return cmd
}

func (c *doctorCommand) run(cmd *cobra.Command, args []string) error {
	u, err := cacheURLFlag(args[0])
	if err != nil {
		return err
	}
	opts := doctor.Options{
		URL: args[0], Key: c.key, Paths: args[1:],
		HTTP: httpcache.Config{
			TokenFile: c.network.tokenFile, Token: os.Getenv("NIXPUSH_TOKEN"),
			NetrcFile: c.network.netrcFile, CACert: c.network.caCert, Timeout: c.network.timeout,
		},
	}
	// file:// is opened by doctor itself, which must not create a missing
	// directory; the other schemes go through the one URL type.
	if u.Scheme() != "file" {
		if opts.Cache, err = u.Open(cmd.Context(), c.network.options()); err != nil {
			opts.Cache = nil // doctor reports the unreachable cache as a check
		}
	}
	r := doctor.Run(cmd.Context(), opts)
	if c.asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		r.Write(cmd.OutOrStdout())
	}
	if !r.OK() {
		return &exitError{code: exitFailure}
	}
	return nil
}
