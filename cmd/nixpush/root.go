package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCommand builds the whole command tree. Nothing runs here: every
// command's flags are defined, so the config file's vocabulary, help and
// shell completion come from these definitions.
func newRootCommand(s stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "nixpush",
		Short: "push every Nix store path your machines build to a binary cache",
		// Errors are printed once, as one line, by run.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return &exitError{code: exitUsage}
		},
		Version: versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.PersistentFlags().String(configFlag, "", "config file (default $NIXPUSH_CONFIG, else "+defaultConfigFile+" if it exists)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		newPushCommand(),
		newCopyLogCommand(),
		newWatchStoreCommand(),
		newStatusCommand(),
		newRetryCommand(),
		newWatchExecCommand(),
		newEnqueueCommand(),
		newKeygenCommand(),
		newConfigCommand(),
		newUseCommand(),
		newDoctorCommand(),
		newVerifyCommand(),
		newGCCommand(),
		newPinCommand(),
		newUnpinCommand(),
		newVersionCommand(),
	)
	// The config file fills every flag the command line left alone; its
	// keys are checked against every command's flags.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Annotations[noConfig] != "" {
			return nil
		}
		return applyConfig(cmd.Flags(), cmd.Name(), vocabulary(root))
	}
	for _, c := range root.Commands() {
		c.Flags().SortFlags = false
		completeFlagValues(c)
	}
	return root
}

// completeFlagValues lets the shell complete the values of c's flags that
// take one of a few words.
func completeFlagValues(c *cobra.Command) {
	words := map[string][]string{
		"compression": compressions,
		"log-format":  logFormats,
		"log-level":   {"debug", "info", "warn", "error"},
	}
	for name, values := range words {
		if c.Flags().Lookup(name) != nil {
			_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

// noConfig marks commands the config file does not apply to.
const noConfig = "no-config"

// vocabulary maps each command to the names of its flags: what a config
// file may set, top-level or in the command's table.
func vocabulary(root *cobra.Command) map[string]map[string]bool {
	known := map[string]map[string]bool{}
	for _, c := range root.Commands() {
		if c.Annotations[noConfig] != "" || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		names := map[string]bool{}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				names[f.Name] = true
			}
		})
		known[c.Name()] = names
	}
	return known
}

// Argument checks shared by commands: mistakes are usage errors (exit 2).

// noArgs refuses arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("nixpush %s takes no arguments (got %q)", cmd.Name(), args[0])
	}
	return nil
}

// exactlyOneURL takes one cache URL argument.
func exactlyOneURL(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError("nixpush %s takes one cache URL", cmd.Name())
	}
	return nil
}

// exactlyOneURLThenPaths takes a cache URL and any paths after it.
func exactlyOneURLThenPaths(cmd *cobra.Command, args []string) error {
	if len(args) < 1 {
		return usageError("nixpush %s needs the cache URL", cmd.Name())
	}
	return nil
}
