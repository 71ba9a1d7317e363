package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// ui writes data to Out and progress to ErrOut, colouring only where it should.
type ui struct {
	out, errOut io.Writer
	color       bool // colour on Out
	errColor    bool // colour on ErrOut
	errTTY      bool // ErrOut is a terminal: progress redraws one line
	outTTY      bool // Out is a terminal: status --watch redraws the screen
}

func (g *GlobalOptions) ui() *ui {
	return &ui{
		out: g.Out, errOut: g.ErrOut,
		color: wantColor(g.Color, g.Out), errColor: wantColor(g.Color, g.ErrOut), errTTY: isTerminal(g.ErrOut),
		outTTY: isTerminal(g.Out),
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func wantColor(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	return !noColor && os.Getenv("TERM") != "dumb" && isTerminal(w)
}

func paint(on bool, attrs ...color.Attribute) func(string) string {
	c := color.New(attrs...)
	if on {
		c.EnableColor()
	} else {
		c.DisableColor()
	}
	return func(s string) string { return c.Sprint(s) }
}

func (u *ui) green(s string) string  { return paint(u.color, color.FgGreen)(s) }
func (u *ui) yellow(s string) string { return paint(u.color, color.FgYellow)(s) }
func (u *ui) red(s string) string    { return paint(u.color, color.FgRed)(s) }
func (u *ui) bold(s string) string   { return paint(u.color, color.Bold)(s) }

// defaultFg is SGR 39, the terminal's own foreground colour.
const defaultFg = color.Attribute(39)

// plainCell is an uncoloured table cell that carries as many invisible bytes as a coloured one
// (tabwriter counts escape codes as width): every cell of a column that colours some is written
// through plainCell or a colour, so the columns after it stay aligned.
func (u *ui) plainCell(s string) string { return paint(u.color, defaultFg)(s) }

// errGreen colours for ErrOut, where progress goes.
func (u *ui) errGreen(s string) string { return paint(u.errColor, color.FgGreen)(s) }

// progress prints a progress line: redrawn in place on a terminal, one line per change otherwise.
type progress struct {
	u    *ui
	last string
}

func (p *progress) update(line string) {
	if line == p.last {
		return
	}
	p.last = line
	if p.u.errTTY {
		fmt.Fprintf(p.u.errOut, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.u.errOut, line)
}

// done ends a redrawn line.
func (p *progress) done() {
	if p.u.errTTY && p.last != "" {
		fmt.Fprintln(p.u.errOut)
	}
	p.last = ""
}

// safe escapes a string from outside (node names, messages) before it reaches a terminal:
// control characters and invalid runes are quoted, so nothing can move the cursor or recolour.
func safe(s string) string {
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// bar draws share (0..1) in width cells.
func bar(share float64, width int) string {
	n := int(share*float64(width) + 0.5)
	n = max(0, min(width, n))
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }

// printStructured writes v as json or yaml.
func printStructured(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q: use json or yaml", format)
}

func validateOutput(o string) error {
	switch o {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output must be json or yaml, not %q", o)
}

// printPlans writes what evacuations would do (a dry run): nothing was started.
func printPlans(w io.Writer, plans []ops.EvacuationPlan) {
	tw := newTable(w)
	fmt.Fprintln(tw, "POD\tNODE\tCONNECTIONS\tSESSIONS\tWOULD MOVE TO\tABOUT")
	for _, p := range plans {
		to, about := safe(strings.Join(p.Targets, ", ")), p.About.String()
		if p.Running {
			to, about = "(evacuating already)", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", safe(p.Pod), safe(p.Node), p.Connections, p.Sessions, to, about)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "dry run: nothing was started")
}

// printScalePlan writes what a scale would do (a dry run): the StatefulSet is unchanged.
func printScalePlan(w io.Writer, name string, res ops.ScaleResult) {
	if res.To > res.From {
		fmt.Fprintf(w, "statefulset %s would scale from %d to %d, adding %s\ndry run: nothing was changed\n",
			name, res.From, res.To, strings.Join(res.Added, ", "))
		return
	}
	var longest time.Duration
	for _, p := range res.Plans {
		longest = max(longest, p.About)
	}
	verb := "is"
	if len(res.Removed) > 1 {
		verb = "are"
	}
	fmt.Fprintf(w, "statefulset %s would scale from %d to %d once %s %s empty (evacuations run at once: about %v)\n",
		name, res.From, res.To, strings.Join(res.Removed, ", "), verb, longest)
	printPlans(w, res.Plans)
}
