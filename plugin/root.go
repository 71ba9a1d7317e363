package plugin

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/version"
)

// NewRootCmd builds `kubectl emqx` and its verbs.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newRootCmd(NewGlobalOptions(streams))
}

func newRootCmd(g *GlobalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-emqx",
		Short: "Safe scale operations for EMQX clusters on Kubernetes",
		Long: `kubectl emqx drives EMQX's node evacuation and cluster rebalance from kubectl: see each pod's
load, empty a node before it goes, spread connections after a scale-up, and scale a StatefulSet
down without cutting live MQTT sessions. It reaches EMQX's API through your own Kubernetes
credentials (a port-forward to a Ready pod), or directly with --emqx-url.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl emqx"},
	}
	root.SetOut(g.Out) // help too goes where the streams say
	root.SetErr(g.ErrOut)
	g.AddFlags(root.PersistentFlags())
	_ = root.RegisterFlagCompletionFunc("color", completeWords("auto", "always", "never"))
	root.AddGroup(commandGroups()...)
	for _, c := range []struct {
		group string
		cmd   *cobra.Command
	}{
		{"observe", newStatusCmd(g)},
		{"move", newEvacuateCmd(g)},
		{"move", newRebalanceCmd(g)},
		{"scale", newScaleCmd(g)},
		{"other", newReportCmd(g)},
		{"other", newVersionCmd(g)},
	} {
		c.cmd.GroupID = c.group
		root.AddCommand(c.cmd)
	}
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	root.SetUsageFunc(usage)
	return root
}

func newVersionCmd(g *GlobalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the plugin's version",
		Example: "  kubectl emqx version\n  kubectl emqx version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{
				"version":  version.Version,
				"go":       runtime.Version(),
				"platform": runtime.GOOS + "/" + runtime.GOARCH,
			}
			if output != "" {
				return printStructured(g.Out, output, v)
			}
			_, err := fmt.Fprintf(g.Out, "kubectl-emqx %s (%s, %s)\n", v["version"], v["go"], v["platform"])
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", completeWords("json", "yaml"))
	return cmd
}

// completeClusters completes cluster names of the namespace.
func completeClusters(g *GlobalOptions) completion {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		clusters, ns := discoverForCompletion(cmd.Context(), g)
		var names []string
		for _, c := range clusters {
			names = append(names, c.Name+"\tEMQX cluster in "+ns)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completion completes an argument or a flag's value (cobra's ValidArgsFunction).
type completion = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// completeWords completes one of a flag's fixed values.
func completeWords(words ...string) completion {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return words, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStatefulSets completes statefulset/NAME of the namespace's EMQX StatefulSets.
func completeStatefulSets(g *GlobalOptions) completion {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		clusters, _ := discoverForCompletion(cmd.Context(), g)
		var names []string
		for _, c := range clusters {
			for _, s := range c.StatefulSets {
				names = append(names, "statefulset/"+s.Name+"\tEMQX cluster "+c.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completePods completes EMQX pod names of the namespace.
func completePods(g *GlobalOptions) completion {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		clusters, _ := discoverForCompletion(cmd.Context(), g)
		var names []string
		for _, c := range clusters {
			for _, p := range c.Pods {
				names = append(names, p.Name+"\t"+c.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func discoverForCompletion(ctx context.Context, g *GlobalOptions) ([]*cluster.Cluster, string) {
	if ctx == nil {
		ctx = context.Background()
	}
	ns, err := g.Namespace()
	if err != nil {
		return nil, ""
	}
	_, cs, err := g.kube()
	if err != nil {
		return nil, ns
	}
	clusters, _ := cluster.Discover(ctx, cs, ns, g.matcher())
	return clusters, ns
}
