package plugin

import (
	"fmt"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// evacuationView shows evacuations while the plugin waits for them: on a terminal, one bar per
// node (connections and sessions moved, state, what is left and the time left), redrawn in place
// by mpb; elsewhere, a plain line for each node whose progress changed.
type evacuationView struct {
	u    *ui
	last map[string]string // plain mode: the last line of each node

	// terminal mode
	mu      sync.Mutex // now is read by mpb's renderer
	now     map[string]evacuation.Progress
	bars    *mpb.Progress
	refresh chan any
	bar     map[string]*mpb.Bar
}

func newEvacuationView(u *ui) *evacuationView {
	v := &evacuationView{
		u:    u,
		last: map[string]string{},
		now:  map[string]evacuation.Progress{},
		bar:  map[string]*mpb.Bar{},
	}
	if u.errTTY {
		v.refresh = make(chan any)
		v.bars = mpb.New(mpb.WithOutput(u.errOut), mpb.WithManualRefresh(v.refresh))
	}
	return v
}

// show draws the nodes' progress, in the order given.
func (v *evacuationView) show(ps []ops.Evacuating) {
	if v.bars == nil {
		for _, p := range ps {
			line := fmt.Sprintf("%s %s: %s", safe(p.Pod), safe(p.State), p.Summary())
			if v.last[p.Node] != line {
				v.last[p.Node] = line
				fmt.Fprintln(v.u.errOut, line)
			}
		}
		return
	}
	v.mu.Lock()
	for _, p := range ps {
		v.now[p.Node] = p.Progress
	}
	v.mu.Unlock()
	for _, p := range ps {
		b, ok := v.bar[p.Node]
		if !ok {
			node := p.Node
			b = v.bars.New(max(p.Initial, 1), mpb.BarStyle(), mpb.BarWidth(24),
				mpb.PrependDecorators(decor.Name(safe(p.Pod), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return v.status(node) })))
			v.bar[node] = b
		}
		if p.Done {
			b.SetTotal(max(p.Initial, 1), true) // complete: a node with nothing left is full
			continue
		}
		b.SetCurrent(p.Moved())
	}
	v.refresh <- struct{}{}
}

// status is a bar's text: state, what is left and about how long it takes.
func (v *evacuationView) status(node string) string {
	v.mu.Lock()
	p := v.now[node]
	v.mu.Unlock()
	if p.Done {
		return v.u.errGreen(safe(p.State) + ": empty")
	}
	s := fmt.Sprintf("%s: %d conns, %d sessions", safe(p.State), p.Connections, p.Sessions)
	if p.Left > 0 {
		s += fmt.Sprintf(", ~%v", p.Left)
	}
	return s
}

// close stops the renderer, leaving unfinished bars where they stand.
func (v *evacuationView) close() {
	if v.bars == nil {
		return
	}
	for _, b := range v.bar {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	v.bars.Wait()
}
