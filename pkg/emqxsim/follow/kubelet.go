package follow

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The follower plays two parts of the world around EMQX that kwok's fake nodes lack, so that
// tests see what readiness does to an EMQX pod:
//   - kubelet's: a pod is Ready only when its containers are ready (each readinessProbe passing,
//     probed over HTTP or TCP against the simulated node with the probe's own timing) and every
//     readiness-gate condition is True; the follower writes ContainersReady and Ready to the pod's
//     status. hack/kwok/stages.yaml starts such pods NotReady instead of kwok's all-Ready.
//   - emqx-operator 2.x's (unless Options.NoOperatorGate, when the real operator runs): the
//     condition apps.emqx.io/on-serving of an operator pod follows the node's availability_check,
//     set once the containers are ready, as the operator's update_pod_conditions does.

// OperatorGate is emqx-operator's readiness gate condition.
const OperatorGate corev1.PodConditionType = "apps.emqx.io/on-serving"

// probeState is kubelet's memory of one container's readiness probe.
type probeState struct {
	last                time.Time
	successes, failures int32
	ready               bool
}

// podProbes is what kubelet remembers of one pod.
type podProbes struct {
	started time.Time
	probes  map[string]*probeState // by container name
}

// probeTick is how often the follower looks at its pods; probes run at their own period.
const probeTick = 200 * time.Millisecond

// kubeletLoop evaluates readiness of every followed pod until ctx ends.
func (f *Follower) kubeletLoop(ctx context.Context) {
	t := time.NewTicker(probeTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		pods := make([]*corev1.Pod, 0, len(f.pods))
		for _, rec := range f.pods {
			if rec.pod != nil {
				pods = append(pods, rec.pod)
			}
		}
		f.mu.Unlock()
		for _, pod := range pods {
			f.syncReadiness(ctx, pod)
		}
	}
}

// syncReadiness runs the pod's due probes and writes the conditions kubelet (and the operator)
// would write, when they differ from the pod's.
func (f *Follower) syncReadiness(ctx context.Context, pod *corev1.Pod) {
	now := time.Now()
	f.mu.Lock()
	pp := f.probes[pod.UID]
	if pp == nil {
		pp = &podProbes{started: now, probes: map[string]*probeState{}}
		f.probes[pod.UID] = pp
	}
	f.mu.Unlock()
	containersReady := true
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if c.ReadinessProbe == nil {
			continue
		}
		st := pp.probes[c.Name]
		if st == nil {
			st = &probeState{}
			pp.probes[c.Name] = st
		}
		p := c.ReadinessProbe
		period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
		if p.PeriodSeconds == 0 {
			period = 10 * time.Second
		}
		due := now.Sub(pp.started) >= time.Duration(p.InitialDelaySeconds)*time.Second && now.Sub(st.last) >= period
		if due {
			st.last = now
			if probe(ctx, pod, c, p) {
				st.successes, st.failures = st.successes+1, 0
				if st.successes >= max(p.SuccessThreshold, 1) {
					st.ready = true
				}
			} else {
				st.failures, st.successes = st.failures+1, 0
				threshold := p.FailureThreshold
				if threshold == 0 {
					threshold = 3
				}
				if st.failures >= threshold {
					st.ready = false
				}
			}
		}
		containersReady = containersReady && st.ready
	}
	want := map[corev1.PodConditionType]bool{corev1.ContainersReady: containersReady}
	gates := true
	for _, g := range pod.Spec.ReadinessGates {
		val := condition(pod, g.ConditionType) == corev1.ConditionTrue
		if g.ConditionType == OperatorGate && !f.opts.NoOperatorGate &&
			pod.Labels["apps.emqx.io/managed-by"] == "emqx-operator" {
			// The operator looks only once the containers are ready.
			if containersReady {
				val = available(ctx, pod, f.opts.Port)
				want[OperatorGate] = val
			} else if condition(pod, OperatorGate) == "" {
				want[OperatorGate] = false
			}
		}
		gates = gates && val
	}
	want[corev1.PodReady] = containersReady && gates
	var changed []corev1.PodCondition
	for typ, ok := range want {
		status := corev1.ConditionFalse
		if ok {
			status = corev1.ConditionTrue
		}
		if condition(pod, typ) != status {
			changed = append(
				changed,
				corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.NewTime(now)},
			)
		}
	}
	if len(changed) == 0 {
		return
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": changed}})
	if _, err := f.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		f.opts.Log("pod %s: write readiness: %v", describe(pod), err)
	}
}

func condition(pod *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// probe runs one readiness probe: httpGet (2xx and 3xx pass) or tcpSocket; exec and gRPC probes
// cannot run against a simulated node and pass.
func probe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, p *corev1.Probe) bool {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		port, ok := containerPort(c, p.HTTPGet.Port)
		if !ok {
			return false
		}
		host := p.HTTPGet.Host
		if host == "" {
			host = pod.Status.PodIP
		}
		scheme := "http"
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(
			ctx,
			http.MethodGet,
			fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), p.HTTPGet.Path),
			nil,
		)
		if err != nil {
			return false
		}
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	case p.TCPSocket != nil:
		port, ok := containerPort(c, p.TCPSocket.Port)
		if !ok {
			return false
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	return true
}

// containerPort resolves a probe's port, by number or by the container port's name.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int, bool) {
	if port.Type == intstr.Int {
		return port.IntValue(), port.IntValue() > 0
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), true
		}
	}
	return 0, false
}

// available asks the node in pod whether it serves clients, as emqx-operator does.
func available(ctx context.Context, pod *corev1.Pod, port int) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	url := fmt.Sprintf(
		"http://%s/api/v5/load_rebalance/availability_check",
		net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)),
	)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
