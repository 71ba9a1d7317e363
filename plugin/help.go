package plugin

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagGroup is the pflag annotation that puts a shared flag in its section of the help.
const flagGroup = "kubectl-emqx/group"

// flagSections are the help's sections of shared flags, in the order they are printed; a
// command's own flags come first.
func flagSections() []struct{ id, title string } {
	return []struct{ id, title string }{
		{"emqx", "EMQX access (instead of what the cluster's Secrets and pods say)"},
		{"output", "Output"},
		{"kubernetes", "Kubernetes (as kubectl's)"},
	}
}

// groupFlags files every flag of fs not yet filed under group.
func groupFlags(fs *pflag.FlagSet, group string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[flagGroup]; !ok {
			_ = fs.SetAnnotation(f.Name, flagGroup, []string{group})
		}
	})
}

// commandGroups are the root's commands by purpose.
func commandGroups() []*cobra.Group {
	return []*cobra.Group{
		{ID: "observe", Title: "See the load:"},
		{ID: "move", Title: "Move connections and sessions:"},
		{ID: "scale", Title: "Scale:"},
		{ID: "other", Title: "Other:"},
	}
}

// usage writes a command's help as cobra does, its commands by purpose and its flags in sections:
// the command's own, then the shared ones by what they are for.
func usage(cmd *cobra.Command) error {
	w := cmd.OutOrStderr()
	fmt.Fprintf(w, "Usage:\n")
	if cmd.Runnable() {
		fmt.Fprintf(w, "  %s\n", cmd.UseLine())
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(w, "  %s [command]\n", cmd.CommandPath())
	}
	if len(cmd.Aliases) > 0 {
		fmt.Fprintf(w, "\nAliases:\n  %s\n", cmd.NameAndAliases())
	}
	if cmd.HasExample() {
		fmt.Fprintf(w, "\nExamples:\n%s\n", cmd.Example)
	}
	if cmd.HasAvailableSubCommands() {
		printCommands(w, cmd)
	}
	own := pflag.NewFlagSet("own", pflag.ContinueOnError)
	shared := map[string]*pflag.FlagSet{}
	add := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		group := f.Annotations[flagGroup]
		if len(group) == 0 {
			own.AddFlag(f)
			return
		}
		if shared[group[0]] == nil {
			shared[group[0]] = pflag.NewFlagSet(group[0], pflag.ContinueOnError)
		}
		shared[group[0]].AddFlag(f)
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	if own.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", own.FlagUsages())
	}
	for _, s := range flagSections() {
		if fs := shared[s.id]; fs != nil {
			fmt.Fprintf(w, "\n%s:\n%s", s.title, fs.FlagUsages())
		}
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nUse \"%s [command] --help\" for more information about a command.\n", cmd.CommandPath())
	}
	return nil
}

// printCommands lists a command's subcommands under their groups' titles, the ungrouped last.
func printCommands(w io.Writer, cmd *cobra.Command) {
	line := func(c *cobra.Command) {
		fmt.Fprintf(w, "  %-*s %s\n", c.NamePadding(), c.Name(), c.Short)
	}
	groups := cmd.Groups()
	if len(groups) == 0 {
		fmt.Fprintf(w, "\nAvailable Commands:\n")
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s\n", g.Title)
		for _, c := range cmd.Commands() {
			if c.GroupID == g.ID && (c.IsAvailableCommand() || c.Name() == "help") {
				line(c)
			}
		}
	}
	var rest []*cobra.Command
	for _, c := range cmd.Commands() {
		if c.GroupID == "" && (c.IsAvailableCommand() || c.Name() == "help") {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 && len(groups) > 0 {
		fmt.Fprintf(w, "\nAdditional Commands:\n")
	}
	for _, c := range rest {
		line(c)
	}
}
