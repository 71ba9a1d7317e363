package emqxcache

import (
	"errors"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// informer hands each handler the events of every alternative's informer. An object two
// alternatives hold comes twice (the controllers' queues fold repeats), and one that leaves an
// alternative while another keeps it comes as a deletion: handlers re-read the cache by key.
type informer struct {
	infs []cache.Informer
}

// registration is a handler's registrations with each informer.
type registration struct {
	regs []toolscache.ResourceEventHandlerRegistration
}

func (r *registration) HasSynced() bool {
	for _, x := range r.regs {
		if !x.HasSynced() {
			return false
		}
	}
	return true
}

func (r *registration) HasSyncedChecker() toolscache.DoneChecker {
	checkers := make([]toolscache.DoneChecker, len(r.regs))
	for i, x := range r.regs {
		checkers[i] = x.HasSyncedChecker()
	}
	return allDone(checkers)
}

// allDone is done when every checker is.
func allDone(checkers []toolscache.DoneChecker) toolscache.DoneChecker {
	done := make(chan struct{})
	go func() {
		for _, c := range checkers {
			<-c.Done()
		}
		close(done)
	}()
	return doneChecker(done)
}

type doneChecker <-chan struct{}

func (d doneChecker) Name() string          { return "emqxcache union" }
func (d doneChecker) Done() <-chan struct{} { return d }

func (i *informer) add(f func(cache.Informer) (toolscache.ResourceEventHandlerRegistration, error)) (
	toolscache.ResourceEventHandlerRegistration, error) {
	reg := &registration{}
	for _, inf := range i.infs {
		r, err := f(inf)
		if err != nil {
			for j, done := range reg.regs {
				_ = i.infs[j].RemoveEventHandler(done)
			}
			return nil, err
		}
		reg.regs = append(reg.regs, r)
	}
	return reg, nil
}

func (i *informer) AddEventHandler(h toolscache.ResourceEventHandler) (
	toolscache.ResourceEventHandlerRegistration, error) {
	return i.add(func(inf cache.Informer) (toolscache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandler(h)
	})
}

func (i *informer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, resync time.Duration) (
	toolscache.ResourceEventHandlerRegistration, error) {
	return i.add(func(inf cache.Informer) (toolscache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithResyncPeriod(h, resync)
	})
}

func (i *informer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, o toolscache.HandlerOptions) (
	toolscache.ResourceEventHandlerRegistration, error) {
	return i.add(func(inf cache.Informer) (toolscache.ResourceEventHandlerRegistration, error) {
		return inf.AddEventHandlerWithOptions(h, o)
	})
}

func (i *informer) RemoveEventHandler(handle toolscache.ResourceEventHandlerRegistration) error {
	reg, ok := handle.(*registration)
	if !ok {
		return errors.New("emqxcache: not a registration of this informer")
	}
	var errs []error
	for j, r := range reg.regs {
		errs = append(errs, i.infs[j].RemoveEventHandler(r))
	}
	return errors.Join(errs...)
}

func (i *informer) AddIndexers(indexers toolscache.Indexers) error {
	for _, inf := range i.infs {
		if err := inf.AddIndexers(indexers); err != nil {
			return err
		}
	}
	return nil
}

func (i *informer) HasSynced() bool {
	for _, inf := range i.infs {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

func (i *informer) HasSyncedChecker() toolscache.DoneChecker {
	checkers := make([]toolscache.DoneChecker, len(i.infs))
	for j, inf := range i.infs {
		checkers[j] = inf.HasSyncedChecker()
	}
	return allDone(checkers)
}

func (i *informer) IsStopped() bool {
	for _, inf := range i.infs {
		if inf.IsStopped() {
			return true
		}
	}
	return false
}

var _ cache.Informer = &informer{}
var _ cache.Cache = &Union{}
