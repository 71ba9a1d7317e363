package layout

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kubectl-emqx/kubectl-emqx/"

type pkg struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		all = append(all, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return all
}

// The import graph says what the packages' doc.go files say.
func TestImportRules(t *testing.T) {
	// forbidden[p] lists import path prefixes p may not import; a rule ending in $ is one path exactly.
	client := []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "k8s.io/utils/clock"}
	forbidden := map[string][]string{
		"pkg/emqx":       {module},
		"pkg/evacuation": append([]string{module + "pkg/cluster", module + "webhook", module + "plugin"}, client...),
		"pkg/status":     append([]string{module + "webhook", module + "plugin"}, client...),
		// The webhook's judgement decides and never writes: no client, no clock, no executor.
		"webhook/decide": append([]string{module + "webhook", module + "plugin"}, client...),
		"pkg/version":    {module},
		// The one way to EMQX reads and never decides: no webhook package, no decision.
		"webhook/observe": {module + "webhook"},
		// The custom metrics ask through observe only: not the gate, not its decisions.
		"webhook/custommetrics": {module + "webhook$", module + "webhook/decide"},
	}
	var all []pkg
	for _, p := range packages(t) {
		all = append(all, p)
		rules := forbidden[p.ImportPath]
		switch {
		case strings.HasPrefix(p.ImportPath, "pkg/"):
			rules = append(rules, module+"webhook", module+"plugin")
		case p.ImportPath == "plugin":
			rules = append(rules, module+"webhook")
		case strings.HasPrefix(p.ImportPath, "webhook"):
			rules = append(rules, module+"plugin")
		}
		for _, imp := range p.Imports {
			for _, f := range rules {
				exact, ok := strings.CutSuffix(f, "$")
				if ok && imp == exact || !ok && strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s", p.ImportPath, imp)
				}
			}
		}
	}
	if len(all) < 15 {
		t.Fatalf("only %d packages listed", len(all))
	}
}

// Every package says its one job and what it may import in a doc.go.
func TestEveryPackageHasADocGo(t *testing.T) {
	for _, p := range packages(t) {
		b, err := os.ReadFile(filepath.Join(p.Dir, "doc.go"))
		if err != nil {
			t.Errorf("%s has no doc.go", p.ImportPath)
			continue
		}
		if !strings.Contains(string(b), "// Package ") && !strings.Contains(string(b), "// Command ") {
			t.Errorf("%s/doc.go names no package or command", p.ImportPath)
		}
	}
}
