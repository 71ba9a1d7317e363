package emqxsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves each node's API on its own address, as pods do.
type Server struct {
	c       *Cluster
	mu      sync.Mutex
	servers map[string]*http.Server
	wg      sync.WaitGroup
}

// NewServer returns a server for c with no listeners yet.
func NewServer(c *Cluster) *Server {
	return &Server{c: c, servers: map[string]*http.Server{}}
}

// Listen starts serving node's API on addr and returns the bound address (addr may use port 0).
func (s *Server) Listen(node, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen for node %s on %s: %w", node, addr, err)
	}
	s.Serve(node, ln)
	return ln.Addr().String(), nil
}

// Serve serves node's API on ln until Close(node) or Shutdown.
func (s *Server) Serve(node string, ln net.Listener) {
	srv := &http.Server{Handler: s.c.Handler(node), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if old := s.servers[node]; old != nil {
		_ = old.Close()
	}
	s.servers[node] = srv
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.c.logf("node %s: serve: %v", node, err)
		}
	}()
}

// ServeAlso serves node's API on one more listener (its dashboard's HTTPS listener beside HTTP),
// stopped with the others by Close; with no listener yet it is Serve.
func (s *Server) ServeAlso(node string, ln net.Listener) {
	s.mu.Lock()
	srv := s.servers[node]
	s.mu.Unlock()
	if srv == nil {
		s.Serve(node, ln)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.c.logf("node %s: serve: %v", node, err)
		}
	}()
}

// Close stops serving node's API.
func (s *Server) Close(node string) {
	s.mu.Lock()
	srv := s.servers[node]
	delete(s.servers, node)
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Shutdown stops every listener, letting in-flight requests finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.servers = map[string]*http.Server{}
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
