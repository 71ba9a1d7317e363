package plugin

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/version"
)

// ReportOptions are the flags of `kubectl emqx report`.
type ReportOptions struct {
	*GlobalOptions
	Cluster          string
	File             string // the zip to write
	WebhookNamespace string
	LogLines         int64
}

func newReportCmd(g *GlobalOptions) *cobra.Command {
	o := &ReportOptions{GlobalOptions: g}
	cmd := &cobra.Command{
		Use:   "report [CLUSTER]",
		Short: "Write a support bundle of an EMQX cluster (a zip, secrets redacted) for a bug report",
		Long: `Write a zip of what a bug report needs: the cluster's EMQX pods, StatefulSets (and the
operator's ReplicaSets) with emqx-webhook's annotations on them, their Events, EMQX's view of its
nodes, evacuations and rebalances, the status table's report, and the last lines of each
emqx-webhook pod's log. Environment variables named like secrets (PASSWORD, SECRET, TOKEN, KEY, …)
are REDACTED and no Secret is written; read the zip before you share it. What cannot be read (EMQX
down, no right to read logs) is listed in the zip's summary.txt and on stderr; the rest is written.`,
		Example: `  kubectl emqx report -n mqtt
  kubectl emqx report emqx -n mqtt -f /tmp/emqx-report.zip --webhook-namespace emqx-webhook`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeClusters(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringVarP(&o.File, "file", "f", "", "the zip to write (default emqx-report-NAMESPACE-CLUSTER-TIME.zip here)")
	f.StringVar(&o.WebhookNamespace, "webhook-namespace", "emqx-webhook",
		`where emqx-webhook runs, for its logs ("" leaves them out)`)
	f.Int64Var(&o.LogLines, "log-lines", 2000, "the last lines of each emqx-webhook pod's log")
	return cmd
}

// Complete takes the cluster.
func (o *ReportOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Cluster = args[0]
	}
	return nil
}

// Validate checks the flags.
func (o *ReportOptions) Validate() error {
	if err := o.GlobalOptions.Validate(); err != nil {
		return err
	}
	switch {
	case o.direct():
		return errors.New("kubectl emqx report reads the cluster's pods and Events: it needs Kubernetes access, " +
			"not --emqx-url")
	case o.LogLines < 1:
		return fmt.Errorf("--log-lines must be at least 1, got %d", o.LogLines)
	}
	return nil
}

// Run gathers the bundle and writes the zip.
func (o *ReportOptions) Run(ctx context.Context) error {
	a, err := o.access()
	if err != nil {
		return err
	}
	b, err := ops.Report{Cluster: o.Cluster, WebhookNamespace: o.WebhookNamespace, LogLines: o.LogLines}.Run(ctx, a)
	if err != nil {
		return err
	}
	now := o.Clock.Now().UTC()
	file := o.File
	if file == "" {
		file = fmt.Sprintf("emqx-report-%s-%s-%s.zip", b.Namespace, b.Cluster, now.Format("20060102-150405"))
	}
	if err := writeBundle(file, b, now); err != nil {
		return err
	}
	u := o.ui()
	for _, p := range b.Problems {
		fmt.Fprintf(o.ErrOut, "%s not in the report: %s\n", u.yellow("Warning:"), safe(p))
	}
	fmt.Fprintf(o.Out, "wrote %s: %d files from EMQX cluster %s/%s (secrets redacted: read it before you share it)\n",
		file, len(b.Files)+1, b.Namespace, b.Cluster)
	return nil
}

// writeBundle writes the bundle's files and a summary (what it holds, what could not be read)
// into the zip file, which is created only readable by its owner.
func writeBundle(file string, b ops.Bundle, now time.Time) (err error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write the report: %w (choose another with -f)", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write the report %s: %w", file, cerr)
		}
	}()
	z := zip.NewWriter(f)
	var summary strings.Builder
	fmt.Fprintf(&summary, "kubectl emqx report %s, by kubectl-emqx %s\nEMQX cluster %s in namespace %s\n\nfiles:\n",
		now.Format(time.RFC3339), version.Version, b.Cluster, b.Namespace)
	for _, fl := range b.Files {
		fmt.Fprintf(&summary, "  %s\n", fl.Name)
	}
	if len(b.Problems) > 0 {
		summary.WriteString("\nnot included (could not be read):\n")
		for _, p := range b.Problems {
			fmt.Fprintf(&summary, "  %s\n", safe(p))
		}
	}
	files := append([]ops.File{{Name: "summary.txt", Data: []byte(summary.String())}}, b.Files...)
	for _, fl := range files {
		w, err := z.CreateHeader(&zip.FileHeader{Name: fl.Name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return fmt.Errorf("write the report %s: %w", file, err)
		}
		if _, err := w.Write(fl.Data); err != nil {
			return fmt.Errorf("write the report %s: %w", file, err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("write the report %s: %w", file, err)
	}
	return nil
}
