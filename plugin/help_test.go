package plugin

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// help runs cmdPath --help and returns what it prints.
func help(t *testing.T, cmdPath ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	root.SetArgs(append(cmdPath, "--help"))
	if err := root.Execute(); err != nil {
		t.Fatalf("%v --help: %v", cmdPath, err)
	}
	return out.String()
}

// The root's help lists the commands by purpose, in that order.
func TestHelpGroupsCommandsByPurpose(t *testing.T) {
	out := help(t)
	want := regexp.MustCompile(`(?s)See the load:\n  status .*\n\nMove connections and sessions:\n  evacuate .*\n` +
		`  rebalance .*\n\nScale:\n  scale .*\n\nOther:\n  completion .*\n  help .*\n  report .*\n  version `)
	if !want.MatchString(out) {
		t.Fatalf("commands not grouped by purpose:\n%s", out)
	}
}

// Every command's help shows each of its flags once: its own first, then the shared ones in
// their sections (EMQX access, output, Kubernetes), none left out.
func TestHelpShowsEveryFlagOnceInItsSection(t *testing.T) {
	root := NewRootCmd(genericiooptions.IOStreams{})
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() && !c.HasAvailableSubCommands() {
			return
		}
		path := strings.Fields(c.CommandPath())[2:] // after "kubectl emqx"
		out := help(t, path...)
		sections := []string{"\nFlags:\n", "\nEMQX access", "\nOutput:\n", "\nKubernetes (as kubectl's):\n"}
		last := -1
		for _, s := range sections {
			i := strings.Index(out, s)
			if i < 0 && s != "\nFlags:\n" {
				t.Errorf("%s --help has no section %q", c.CommandPath(), s)
			}
			if i >= 0 && i < last {
				t.Errorf("%s --help: section %q out of order", c.CommandPath(), s)
			}
			last = max(last, i)
		}
		visit := func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			flags := out[strings.Index(out, "\nFlags:\n"):] // the examples may name flags too
			n := len(regexp.MustCompile(`(?m)^\s+(-\w, )?--`+regexp.QuoteMeta(f.Name)+`( |$)`).
				FindAllString(flags, -1))
			if n != 1 {
				t.Errorf("%s --help shows --%s %d times", c.CommandPath(), f.Name, n)
			}
		}
		c.LocalFlags().VisitAll(visit)
		c.InheritedFlags().VisitAll(visit)
		checked++
	}
	walk(root)
	if checked < 8 {
		t.Fatalf("only %d commands' help checked", checked)
	}
	status := help(t, "status")
	if i, j := strings.Index(status, "--all-namespaces"), strings.Index(status, "--api-key"); i < 0 || i > j {
		t.Errorf("status --help: its own flags do not come before the shared ones")
	}
}
