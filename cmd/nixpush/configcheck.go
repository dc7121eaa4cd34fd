package main

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"nixpush/cache/location"
)

// newConfigCommand is `nixpush config check [--for COMMAND]`: it validates
// the config file and prints the settings COMMAND (default watch-store)
// would run with, credentials in URLs redacted.
func newConfigCommand() *cobra.Command {
	var forCmd string
	cmd := &cobra.Command{
		Use:         "config check [--for COMMAND] [--config FILE]",
		Short:       "validate the config file and print the effective settings",
		Annotations: map[string]string{noConfig: "the file is what it checks"},
		ValidArgs:   []string{"check"},
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] != "check" {
				return usageError("usage: nixpush config check [--for COMMAND] [--config FILE]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A fresh tree, so the flags shown are COMMAND's defaults plus
			// the file, nothing else.
			root := newRootCommand(stdio{})
			target, _, err := root.Find([]string{forCmd})
			if err != nil || target == root || target.Annotations[noConfig] != "" {
				return usageError("no command %q", forCmd)
			}
			fs := target.Flags()
			fs.AddFlagSet(root.PersistentFlags())
			if file, _ := cmd.Flags().GetString(configFlag); file != "" {
				_ = fs.Set(configFlag, file)
				fs.Lookup(configFlag).Changed = false
			}
			if err := applyConfig(fs, forCmd, vocabulary(root)); err != nil {
				return err
			}
			path, _ := configPath(fs)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "# effective settings of nixpush %s (config %s)\n", forCmd, path)
			fs.VisitAll(func(f *pflag.Flag) {
				if f.Name == configFlag || f.Name == "help" {
					return
				}
				origin := ""
				if f.Changed {
					origin = "  # from the config file"
				}
				fmt.Fprintf(out, "%s = %s%s\n", f.Name, redactValue(f), origin)
			})
			return nil
		},
	}
	cmd.Flags().StringVar(&forCmd, "for", "watch-store", "show the settings of this command")
	_ = cmd.RegisterFlagCompletionFunc("for", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		var names []string
		for name := range vocabulary(cmd.Root()) {
			names = append(names, name)
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// redactValue shows a flag's value without credentials.
func redactValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		vals := sv.GetSlice()
		for i, v := range vals {
			vals[i] = location.Redact(v)
		}
		return fmt.Sprintf("%q", vals)
	}
	v := location.Redact(f.Value.String())
	if f.Value.Type() == "string" {
		return strconv.Quote(v)
	}
	return v
}
