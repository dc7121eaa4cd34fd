package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"nixpush/doctor"
)

// doctorCommand is `nixpush doctor URL [--key KEY] [PATH...]`: why does
// this machine build instead of substituting? One line per check, each
// with a fix; exit 1 when one fails.
type doctorCommand struct {
	key     string
	store   string
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
	fs.StringVar(&c.store, "store", "", "root of the local Nix store the paths are in, as Nix's --store ROOT: paths resolve through it and each narinfo is compared with it")
	c.network.add(fs)
	return cmd
}

func (c *doctorCommand) run(cmd *cobra.Command, args []string) error {
	if _, err := cacheURLFlag(args[0]); err != nil {
		return err
	}
	r := doctor.Run(cmd.Context(), doctor.Options{
		URL: args[0], Key: c.key, Paths: args[1:], Open: c.network.options(), Store: c.store,
	})
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
