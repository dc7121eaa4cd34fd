package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag groups: help lists a command's flags under these headings, in this
// order, instead of one list of thirty.
const (
	groupCache     = "Cache"
	groupSigning   = "Signing"
	groupFiltering = "Filtering"
	groupNetwork   = "Network"
	groupQueue     = "Queue and state"
	groupDaemon    = "Daemon"
	groupGC        = "Garbage collection"
	groupOutput    = "Output"
)

var groupOrder = []string{groupCache, groupSigning, groupFiltering, groupNetwork, groupQueue, groupDaemon, groupGC, groupOutput}

const groupAnnotation = "nixpush_group"

// setGroup files the named flags of fs under group.
func setGroup(fs *pflag.FlagSet, group string, names ...string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			_ = fs.SetAnnotation(n, groupAnnotation, []string{group})
		}
	}
}

// groupedFlagUsages is a command's flags under their groups' headings;
// flags of no group come first, under "Flags".
func groupedFlagUsages(cmd *cobra.Command) string {
	sets := map[string]*pflag.FlagSet{}
	order := append([]string{"Flags"}, groupOrder...)
	for _, g := range order {
		sets[g] = pflag.NewFlagSet(g, pflag.ContinueOnError)
		sets[g].SortFlags = false
	}
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		g := "Flags"
		if a := f.Annotations[groupAnnotation]; len(a) > 0 {
			g = a[0]
		}
		sets[g].AddFlag(f)
	})
	var b strings.Builder
	for _, g := range order {
		if sets[g].HasFlags() {
			fmt.Fprintf(&b, "\n%s:\n%s", g, sets[g].FlagUsagesWrapped(100))
		}
	}
	if cmd.HasAvailableInheritedFlags() {
		fmt.Fprintf(&b, "\nGlobal flags:\n%s", cmd.InheritedFlags().FlagUsagesWrapped(100))
	}
	return b.String()
}

// usageTemplate is cobra's, with the flags grouped.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableFlags}}
{{groupedFlagUsages .}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

func init() {
	cobra.AddTemplateFunc("groupedFlagUsages", groupedFlagUsages)
}
