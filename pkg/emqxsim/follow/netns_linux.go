package follow

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// listenIn opens a TCP listener inside the named network namespace (from `ip netns add`), or in
// the current one when netns is "". The socket stays in that namespace after the thread switches
// back, so the simulator runs on the host (reaching the API server on loopback) while each node
// answers on its pod IP inside the pod network namespace.
func listenIn(netns, addr string) (net.Listener, error) {
	if netns == "" {
		return net.Listen("tcp", addr)
	}
	target, err := os.Open(filepath.Join("/var/run/netns", netns))
	if err != nil {
		return nil, fmt.Errorf("open network namespace %q (created by hack/cluster-up.sh): %w", netns, err)
	}
	defer target.Close()

	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This goroutine's thread changes namespace; it is never handed back to the scheduler
		// unless it returned to the original namespace.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter network namespace %q: %w", netns, err)}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln: ln, err: lerr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("listen on %s in network namespace %q: %w", addr, netns, r.err)
	}
	return r.ln, nil
}
