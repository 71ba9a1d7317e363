package plugin

import (
	"archive/zip"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// readZip returns a zip's files by name.
func readZip(t *testing.T, file string) map[string]string {
	t.Helper()
	z, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	out := map[string]string{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(b)
	}
	return out
}

// report writes a zip of the cluster's objects, their Events, EMQX's answers and the webhook's
// logs, with the dashboard password redacted; what it cannot read is named, not fatal.
func TestReportBundlesWhatABugReportNeeds(t *testing.T) {
	e := newEnv(t, 100, 300)
	for _, obj := range []*corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: "mqtt"}, Reason: "EvacuationStarted",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "emqx-1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "mqtt"}, Reason: "Unrelated",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-0"}},
	} {
		if err := e.kube.Tracker().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.kube.Tracker().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-webhook-abc",
		Namespace: "emqx-webhook", Labels: map[string]string{"app.kubernetes.io/name": "emqx-webhook"}}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "r.zip")
	out, errOut, err := e.run(context.Background(), "report", "-n", "mqtt", "-f", file)
	if err != nil || !strings.Contains(out, "wrote "+file+": 8 files from EMQX cluster mqtt/emqx") || errOut != "" {
		t.Fatalf("report: %v\n%s\n%s", err, out, errOut)
	}
	files := readZip(t, file)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"emqx/global-status.json", "emqx/nodes.json", "events.yaml", "pods.yaml", "statefulsets.yaml",
		"status.json", "summary.txt", "webhook/emqx-webhook-abc.log"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	for name, body := range files {
		if strings.Contains(body, "kemqx-dashboard-pw") {
			t.Errorf("%s carries the dashboard password", name)
		}
	}
	switch {
	case !strings.Contains(files["pods.yaml"], "value: REDACTED") ||
		!strings.Contains(files["statefulsets.yaml"], "value: REDACTED"):
		t.Errorf("the password's place is not marked REDACTED:\n%s", files["pods.yaml"])
	case !strings.Contains(files["events.yaml"], "EvacuationStarted") ||
		strings.Contains(files["events.yaml"], "Unrelated"):
		t.Errorf("events: the cluster's, only:\n%s", files["events.yaml"])
	case !strings.Contains(files["emqx/nodes.json"], `"live_connections": 300`):
		t.Errorf("EMQX's nodes:\n%s", files["emqx/nodes.json"])
	case !strings.Contains(files["status.json"], `"connections": 400`):
		t.Errorf("status:\n%s", files["status.json"])
	case !strings.Contains(files["summary.txt"], "EMQX cluster emqx in namespace mqtt"):
		t.Errorf("summary:\n%s", files["summary.txt"])
	}
	// Logs out of reach: the rest is written, what is missing said on stderr and in the summary.
	file = filepath.Join(t.TempDir(), "r.zip")
	out, errOut, err = e.run(context.Background(), "report", "-n", "mqtt", "-f", file,
		"--webhook-namespace", "elsewhere")
	if err != nil || !strings.Contains(errOut, "not in the report: no emqx-webhook pod in namespace elsewhere") ||
		!strings.Contains(readZip(t, file)["summary.txt"], "no emqx-webhook pod in namespace elsewhere") {
		t.Fatalf("report without the webhook's logs: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := e.run(context.Background(), "report", "-n", "mqtt", "-f", file); err == nil ||
		!strings.Contains(err.Error(), "choose another with -f") {
		t.Errorf("an existing file must not be overwritten: %v", err)
	}
}
