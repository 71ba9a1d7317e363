package cluster

import (
	"bufio"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// emqxContainer is the container named "emqx", else the first one.
func emqxContainer(spec *corev1.PodSpec) *corev1.Container {
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

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.]*)\)`)

// Env resolves the EMQX container's environment of pod as the kubelet would: literal values with
// $(VAR) references to earlier variables, and downward-API field references. Secret references
// are resolved by secret (nil leaves them out).
func Env(pod *corev1.Pod, secret func(name, key string) (string, bool)) map[string]string {
	env := map[string]string{}
	c := emqxContainer(&pod.Spec)
	if c == nil {
		return env
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = varRef.ReplaceAllStringFunc(e.Value, func(m string) string {
				if v, ok := env[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom.SecretKeyRef != nil && secret != nil:
			if v, ok := secret(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key); ok {
				env[e.Name] = v
			}
		}
	}
	return env
}

func fieldValue(pod *corev1.Pod, field string) string {
	switch field {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "status.podIP":
		return pod.Status.PodIP
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "metadata.uid":
		return string(pod.UID)
	}
	return ""
}

// NodeName is the Erlang node name EMQX's docker entrypoint derives from the environment
// (SPEC §8.2): EMQX_NODE_NAME or EMQX_NODE__NAME whole, else EMQX_NAME@EMQX_HOST, with the pod IP
// as the host when none is set. The plugin never builds names this way to address EMQX (it asks
// /api/v5/nodes); the simulator uses it to name its nodes as EMQX would.
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
		host = pod.Status.PodIP
	}
	return name + "@" + host
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
}

// ParseBootstrapFile reads EMQX's bootstrap API key format (SPEC §2.3): one key:secret[:role[:scopes]]
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
	file := Unquote(env["EMQX_API_KEY__BOOTSTRAP_FILE"])
	c := emqxContainer(&pod.Spec)
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
