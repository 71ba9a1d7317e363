package cluster

import (
	"bufio"
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// EMQXContainer is the container named "emqx", else the first one (nil: none).
func EMQXContainer(spec *corev1.PodSpec) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == "emqx" {
			return &spec.Containers[i]
		}
	}
	if len(spec.Containers) == 0 {
		return nil
	}
	return &spec.Containers[0]
}

// Image is the image of the pod's EMQX container, "" when it has none.
func Image(pod *corev1.Pod) string {
	if c := EMQXContainer(&pod.Spec); c != nil {
		return c.Image
	}
	return ""
}

// Sources reads the objects a pod's environment refers to, in the pod's namespace: ConfigMaps and
// Secrets. A nil reader, or ok false, means the object cannot be read (missing, or not allowed).
type Sources struct {
	ConfigMap func(name string) (data map[string]string, ok bool)
	Secret    func(name string) (data map[string][]byte, ok bool)
}

func (s Sources) configMap(name string) (map[string]string, bool) {
	if s.ConfigMap == nil {
		return nil, false
	}
	return s.ConfigMap(name)
}

func (s Sources) secret(name string) (map[string]string, bool) {
	if s.Secret == nil {
		return nil, false
	}
	raw, ok := s.Secret(name)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		out[k] = string(v)
	}
	return out, true
}

// Env resolves the EMQX container's environment of pod as the kubelet does: envFrom sources first
// (ConfigMaps and Secrets, with their prefixes; a key with '=' is skipped), then env in order, each
// value expanding $(VAR) references to variables defined before it ($$ is a literal $; an unknown
// reference stays as written), valueFrom resolving downward-API fields, ConfigMap and Secret keys.
// What cannot be read is left out, as kubelet would not start a container without it.
func Env(pod *corev1.Pod, src Sources) map[string]string {
	env := map[string]string{}
	c := EMQXContainer(&pod.Spec)
	if c == nil {
		return env
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		var ok bool
		switch {
		case from.ConfigMapRef != nil:
			data, ok = src.configMap(from.ConfigMapRef.Name)
		case from.SecretRef != nil:
			data, ok = src.secret(from.SecretRef.Name)
		}
		if !ok {
			continue
		}
		for k, v := range data {
			if !strings.Contains(k, "=") {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = Expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if data, ok := src.configMap(ref.Name); ok {
				if v, ok := data[ref.Key]; ok {
					env[e.Name] = v
				}
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if data, ok := src.secret(ref.Name); ok {
				if v, ok := data[ref.Key]; ok {
					env[e.Name] = v
				}
			}
		}
	}
	return env
}

// Expand replaces $(VAR) in s with env's value, as kubelet expands container environment values:
// $$ is a literal $, and a reference to an unknown variable (or an unclosed one) stays as written.
func Expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func fieldValue(pod *corev1.Pod, field string) string {
	switch field {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.hostIP":
		return pod.Status.HostIP
	case "status.podIP":
		return pod.Status.PodIP
	case "status.podIPs":
		ips := make([]string, 0, len(pod.Status.PodIPs))
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ",")
	}
	for _, kind := range []struct {
		prefix string
		m      map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if rest, ok := strings.CutPrefix(field, kind.prefix+"['"); ok {
			return kind.m[strings.TrimSuffix(rest, "']")]
		}
	}
	return ""
}

// NodeName is the Erlang node name EMQX's docker entrypoint derives from the environment
// (pkg/emqx/API.md, "Node names"): EMQX_NODE_NAME or EMQX_NODE__NAME whole, else
// EMQX_NAME@EMQX_HOST. Without EMQX_HOST the entrypoint looks at /etc/hosts, which kubelet writes
// from the pod's hostname and subdomain: DNS discovery with SRV records takes the pod's FQDN when it
// is <hostname>.EMQX_CLUSTER__DNS__NAME; k8s discovery takes the dashed-IP name (address type dns)
// or the FQDN (address type hostname); otherwise the pod IP. The plugin and webhook never build
// names this way to address EMQX (they ask /api/v5/nodes); they use it to recognise a pod's node,
// and the simulator to name its nodes as EMQX would.
func NodeName(pod *corev1.Pod, env map[string]string) string {
	for _, k := range []string{"EMQX_NODE_NAME", "EMQX_NODE__NAME"} {
		if v := Unquote(env[k]); v != "" {
			return v
		}
	}
	name := Unquote(env["EMQX_NAME"])
	if name == "" {
		name = "emqx"
	}
	host := Unquote(env["EMQX_HOST"])
	if host == "" {
		host = derivedHost(pod, env)
	}
	return name + "@" + host
}

// derivedHost is the host part EMQX's entrypoint picks when EMQX_HOST is unset.
func derivedHost(pod *corev1.Pod, env map[string]string) string {
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	// kubelet's /etc/hosts line for a pod with a subdomain: <ip> <hostname>.<subdomain>.<ns>.svc.<domain> <hostname>
	fqdnPrefix := ""
	if pod.Spec.Subdomain != "" {
		fqdnPrefix = hostname + "." + pod.Spec.Subdomain + "." + pod.Namespace + ".svc."
	}
	strategy := Unquote(env["EMQX_CLUSTER__DISCOVERY_STRATEGY"])
	ns := Unquote(env["EMQX_CLUSTER__K8S__NAMESPACE"])
	switch {
	case strategy == "dns" && Unquote(env["EMQX_CLUSTER__DNS__RECORD_TYPE"]) == "srv" && fqdnPrefix != "":
		if fqdn := hostname + "." + Unquote(env["EMQX_CLUSTER__DNS__NAME"]); strings.HasPrefix(fqdn, fqdnPrefix) &&
			len(fqdn) > len(fqdnPrefix) {
			return fqdn
		}
	case strategy == "k8s" && Unquote(env["EMQX_CLUSTER__K8S__ADDRESS_TYPE"]) == "dns" && ns != "":
		suffix := Unquote(env["EMQX_CLUSTER__K8S__SUFFIX"])
		if suffix == "" {
			suffix = "pod.cluster.local"
		}
		return strings.ReplaceAll(pod.Status.PodIP, ".", "-") + "." + ns + "." + suffix
	case strategy == "k8s" && Unquote(env["EMQX_CLUSTER__K8S__ADDRESS_TYPE"]) == "hostname" && ns != "" &&
		fqdnPrefix != "":
		suffix := Unquote(env["EMQX_CLUSTER__K8S__SUFFIX"])
		if suffix == "" {
			suffix = "svc.cluster.local"
		}
		if ns == pod.Namespace && strings.HasPrefix(suffix, "svc.") {
			return hostname + "." + pod.Spec.Subdomain + "." + ns + "." + suffix
		}
	}
	return pod.Status.PodIP
}

// Role is the pod's EMQX role: replicant when EMQX_NODE__ROLE or the operator's label says so.
func Role(pod *corev1.Pod, env map[string]string) string {
	if Unquote(env["EMQX_NODE__ROLE"]) == "replicant" || pod.Labels[LabelOperatorRole] == "replicant" {
		return "replicant"
	}
	return "core"
}

// Unquote drops the double quotes HOCON-style values carry ("\"/opt/emqx/data/x\"").
func Unquote(s string) string {
	return strings.Trim(strings.TrimSpace(s), `"`)
}

// BootstrapKey is one line of EMQX's bootstrap API key file.
type BootstrapKey struct {
	Key, Secret, Role string
	// Scopes is the 4th field (5.10.4+): nil when omitted (unrestricted), empty when given empty.
	Scopes []string
}

// ParseBootstrapFile reads EMQX's bootstrap API key format (API.md §2.3): one key:secret[:role[:scopes]]
// per non-empty line; loading stops at the first malformed line; a repeated key: the last wins.
func ParseBootstrapFile(content string) []BootstrapKey {
	byKey := map[string]int{}
	var keys []BootstrapKey
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) < 2 || len(parts) > 4 || parts[0] == "" || parts[1] == "" {
			break
		}
		k := BootstrapKey{Key: parts[0], Secret: parts[1]}
		if len(parts) >= 3 {
			k.Role = parts[2]
		}
		if len(parts) == 4 {
			k.Scopes = []string{}
			for _, s := range strings.Split(parts[3], ",") {
				if s = strings.TrimSpace(s); s != "" {
					k.Scopes = append(k.Scopes, s)
				}
			}
		}
		if i, ok := byKey[k.Key]; ok {
			keys[i] = k
			continue
		}
		byKey[k.Key] = len(keys)
		keys = append(keys, k)
	}
	return keys
}

// DashboardUser is the dashboard login a pod's EMQX accepts: EMQX_DASHBOARD__DEFAULT_USERNAME and
// _PASSWORD, defaulting to EMQX's admin/public.
func DashboardUser(env map[string]string) (user, password string) {
	user, password = Unquote(env["EMQX_DASHBOARD__DEFAULT_USERNAME"]), Unquote(env["EMQX_DASHBOARD__DEFAULT_PASSWORD"])
	if user == "" {
		user = "admin"
	}
	if password == "" {
		password = "public"
	}
	return user, password
}

// BootstrapSecret finds the Secret and key that hold the pod's bootstrap API key file
// (EMQX_API_KEY__BOOTSTRAP_FILE mounted from a Secret volume), or ok false.
func BootstrapSecret(pod *corev1.Pod, env map[string]string) (secret, key string, ok bool) {
	return MountedSecret(pod, Unquote(env["EMQX_API_KEY__BOOTSTRAP_FILE"]))
}

// MountedSecret is the Secret and key that the EMQX container sees at path file, when a Secret
// volume mounted there holds it.
func MountedSecret(pod *corev1.Pod, file string) (secret, key string, ok bool) {
	c := EMQXContainer(&pod.Spec)
	if file == "" || c == nil {
		return "", "", false
	}
	for _, m := range c.VolumeMounts {
		rel, under := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !under && m.SubPath != "" && m.MountPath == file {
			rel, under = m.SubPath, true
		}
		if !under {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			key = rel
			for _, item := range v.Secret.Items {
				if item.Path == rel {
					key = item.Key
				}
			}
			return v.Secret.SecretName, key, true
		}
	}
	return "", "", false
}

// KubeSources reads ConfigMaps and Secrets of namespace ns through the API (uncached: the
// webhook does not list or watch them).
func KubeSources(ctx context.Context, kube kubernetes.Interface, ns string) Sources {
	return Sources{
		ConfigMap: func(name string) (map[string]string, bool) {
			cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, false
			}
			return cm.Data, true
		},
		Secret: func(name string) (map[string][]byte, bool) {
			s, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, false
			}
			return s.Data, true
		},
	}
}

// ExpectedNodeName is the node name the pod's own environment gives its EMQX, read as kubelet
// would with the objects it refers to.
func ExpectedNodeName(ctx context.Context, kube kubernetes.Interface, pod *corev1.Pod) string {
	if kube == nil {
		return NodeName(pod, Env(pod, Sources{}))
	}
	return NodeName(pod, Env(pod, KubeSources(ctx, kube, pod.Namespace)))
}

// HardenedLoopback reports that EMQX in a pod with this environment serves its dashboard (the REST
// API) on 127.0.0.1 only: from 6.2.1, EMQX_SECURITY_PROFILE=hardened binds a listener given as a
// bare port to loopback (emqx_security_profile.erl, dashboard_http_default_bind). Nothing outside
// the pod can reach it then.
func HardenedLoopback(env map[string]string) bool {
	if !HardenedProfile(env) {
		return false
	}
	bind := Unquote(env["EMQX_DASHBOARD__LISTENERS__HTTP__BIND"])
	return bind == "" || !strings.Contains(bind, ":")
}

// HardenedProfile is EMQX_SECURITY_PROFILE=hardened in a pod's environment (honoured from 6.2.1).
func HardenedProfile(env map[string]string) bool {
	return strings.EqualFold(Unquote(env["EMQX_SECURITY_PROFILE"]), "hardened")
}
