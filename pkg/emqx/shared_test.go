package emqx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Reads that arrive together share one answer, for at most the age asked, and never across a
// write: EMQX sees one GET per path and age, whatever the number of callers.
func TestSharedReadsAskOncePerAgeAndNeverAcrossAWrite(t *testing.T) {
	var gets, posts atomic.Int32
	release := make(chan struct{})
	var hold atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			return
		}
		n := gets.Add(1)
		if hold.Load() {
			<-release
		}
		fmt.Fprintf(w, `{"evacuations":[],"rebalances":[{"node":"n%d"}]}`, n)
	}))
	defer srv.Close()
	clk := clocktesting.NewFakeClock(time.Now())
	c, _ := emqx.New(srv.URL, apiKey, emqx.WithClock(clk), emqx.WithSharedReads(time.Second))
	ctx := context.Background()
	read := func() string {
		t.Helper()
		g, err := c.GlobalStatus(ctx)
		if err != nil || len(g.Rebalances) != 1 {
			t.Fatalf("global status: %v %+v", err, g)
		}
		return g.Rebalances[0].Node
	}
	// 20 callers at once: one GET, one answer for all.
	hold.Store(true)
	var wg sync.WaitGroup
	answers := make([]string, 20)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = read() }()
	}
	for gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others arrive while the first is in flight
	hold.Store(false)
	close(release)
	wg.Wait()
	for _, a := range answers {
		if a != "n1" {
			t.Fatalf("callers got %v from %d GETs; want one shared answer", answers, gets.Load())
		}
	}
	if gets.Load() != 1 {
		t.Fatalf("%d GETs for 20 callers at once", gets.Load())
	}
	// Within the age: the same answer; past it: asked again.
	clk.Step(999 * time.Millisecond)
	if a := read(); a != "n1" || gets.Load() != 1 {
		t.Fatalf("within the age: %s after %d GETs", a, gets.Load())
	}
	clk.Step(time.Millisecond)
	if a := read(); a != "n2" {
		t.Fatalf("past the age: %s, want a new answer", a)
	}
	// A write ends the shared answer at once.
	if err := c.StopEvacuation(ctx, "emqx@e"); err != nil {
		t.Fatal(err)
	}
	if a := read(); a != "n3" || posts.Load() != 1 {
		t.Fatalf("after a write: %s, want a new answer", a)
	}
	// A fresh read (emqx.Fresh) asks EMQX even within the age; the shared answer stays for the rest.
	g, err := c.GlobalStatus(emqx.Fresh(ctx))
	if err != nil || g.Rebalances[0].Node != "n4" || !emqx.IsFresh(emqx.Fresh(ctx)) || emqx.IsFresh(ctx) {
		t.Fatalf("fresh read: %v %+v, want n4", err, g)
	}
	if a := read(); a != "n3" {
		t.Fatalf("after a fresh read the shared answer is %s, want n3", a)
	}
	// Without the option every read asks.
	plain, _ := emqx.New(srv.URL, apiKey, emqx.WithClock(clk))
	for range 3 {
		if _, err := plain.GlobalStatus(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if gets.Load() != 7 {
		t.Fatalf("%d GETs in all, want 7", gets.Load())
	}
}

// A read in flight when a write is sent is not kept: the next read asks again.
func TestSharedReadsKeepNothingAskedBeforeAWrite(t *testing.T) {
	var gets atomic.Int32
	inFlight, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			return
		}
		if gets.Add(1) == 1 {
			close(inFlight)
			<-release
		}
		fmt.Fprint(w, `[]`)
	}))
	defer srv.Close()
	clk := clocktesting.NewFakeClock(time.Now())
	c, _ := emqx.New(srv.URL, apiKey, emqx.WithClock(clk), emqx.WithSharedReads(time.Second))
	ctx := context.Background()
	done := make(chan error)
	go func() { _, err := c.Nodes(ctx); done <- err }()
	<-inFlight
	if err := c.StartEvacuation(ctx, "emqx@e", emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes(ctx); err != nil || gets.Load() != 2 {
		t.Fatalf("the read asked before the write was kept: %v, %d GETs", err, gets.Load())
	}
}
