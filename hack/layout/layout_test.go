package layout

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
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
		// The only writer carries out decisions; it does not make them or call who makes them.
		"webhook/effects": {module + "webhook$", module + "webhook/admission", module + "webhook/controller",
			module + "webhook/app"},
		// The gate decides and has the executor write; it knows nothing of handlers or controllers.
		"webhook": {module + "webhook/admission", module + "webhook/controller", module + "webhook/app",
			module + "webhook/custommetrics", module + "webhook/internal"},
		// Handlers read reviews and the cache and ask the gate: they neither write nor ask EMQX.
		"webhook/admission": {module + "webhook/effects", module + "webhook/observe", module + "webhook/controller",
			module + "webhook/app"},
		// Controllers are on the same read, judge, write path as the gate, without the gate.
		"webhook/controller": {module + "webhook$", module + "webhook/admission", module + "webhook/app"},
		// The custom metrics ask through observe only: not the gate, not its decisions.
		"webhook/custommetrics": {module + "webhook$", module + "webhook/decide"},
		// The cache knows labels, not the webhook.
		"webhook/emqxcache": {module + "webhook"},
		// The tests' world serves every package's tests, so it imports none of them.
		"webhook/internal/webhooktest": {module + "webhook$", module + "webhook/admission",
			module + "webhook/controller", module + "webhook/app"},
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

// writes are the calls that change something: Kubernetes objects, Events, EMQX.
var writes = map[string]bool{
	"Patch": true, "Update": true, "Create": true, "Delete": true, "Event": true, "Eventf": true,
	"AnnotatedEventf": true, "StartEvacuation": true, "StopEvacuation": true, "StartRebalance": true,
	"StopRebalance": true, "ForceLeave": true, "ForgetSite": true, "SetReplicaSites": true,
}

// Every write the webhook makes is in webhook/effects: elsewhere in webhook/ a write is a call of
// the executor (a receiver named Exec). webhook/app wires; the certificate rotator is pkg/certs.
func TestOnlyTheExecutorWrites(t *testing.T) {
	checked := 0
	for _, p := range packages(t) {
		if !strings.HasPrefix(p.ImportPath, "webhook") || p.ImportPath == "webhook/effects" ||
			p.ImportPath == "webhook/app" || strings.HasPrefix(p.ImportPath, "webhook/internal") {
			continue
		}
		for _, name := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !writes[sel.Sel.Name] {
					return true
				}
				if recv, ok := sel.X.(*ast.SelectorExpr); ok && (recv.Sel.Name == "Exec" || recv.Sel.Name == "locks") {
					return true // the executor; or the gate's in-memory lock map
				}
				t.Errorf("%s/%s: %s is a write outside webhook/effects; call it through the executor",
					p.ImportPath, name, types.ExprString(sel))
				return true
			})
		}
	}
	if checked < 10 {
		t.Fatalf("only %d files checked", checked)
	}
}
