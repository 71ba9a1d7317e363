// Package follow runs one simulated EMQX node per Running EMQX pod of a Kubernetes cluster, on
// that pod's IP, with the node name and credentials the pod's spec would give a real EMQX.
package follow

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// Labels that identify an EMQX install and its cluster.
const (
	LabelOperatorInstance = "apps.emqx.io/instance"
	LabelOperatorRole     = "apps.emqx.io/db-role"
	LabelHelmInstance     = "app.kubernetes.io/instance"
)

// ClusterKey groups pods into EMQX clusters: namespace and instance label.
func ClusterKey(pod *corev1.Pod) string {
	inst := pod.Labels[LabelOperatorInstance]
	if inst == "" {
		inst = pod.Labels[LabelHelmInstance]
	}
	if inst == "" {
		inst = "emqx"
	}
	return pod.Namespace + "/" + inst
}

// emqxContainer is the container named "emqx", else the first one.
func emqxContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "emqx" {
			return &pod.Spec.Containers[i]
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return nil
	}
	return &pod.Spec.Containers[0]
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.]*)\)`)

// Env resolves the EMQX container's environment as the kubelet would: literal values with
// $(VAR) references to earlier variables, and downward-API field references. Secret references
// are resolved by secret (nil: left empty).
func Env(pod *corev1.Pod, secret func(name, key string) string) map[string]string {
	env := map[string]string{}
	c := emqxContainer(pod)
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
			env[e.Name] = secret(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
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
// as the host when none is set.
func NodeName(pod *corev1.Pod, env map[string]string) string {
	for _, k := range []string{"EMQX_NODE_NAME", "EMQX_NODE__NAME"} {
		if v := unquote(env[k]); v != "" {
			return v
		}
	}
	name := unquote(env["EMQX_NAME"])
	if name == "" {
		name = "emqx"
	}
	host := unquote(env["EMQX_HOST"])
	if host == "" {
		host = pod.Status.PodIP
	}
	return name + "@" + host
}

// Role is the pod's EMQX role: replicant when EMQX_NODE__ROLE or the operator's label says so.
func Role(pod *corev1.Pod, env map[string]string) string {
	if unquote(env["EMQX_NODE__ROLE"]) == "replicant" || pod.Labels[LabelOperatorRole] == "replicant" {
		return "replicant"
	}
	return "core"
}

// unquote drops the double quotes HOCON-style values carry ("\"/opt/emqx/data/x\"").
func unquote(s string) string {
	return strings.Trim(strings.TrimSpace(s), `"`)
}

// Credentials are what a real EMQX in this pod would accept: the dashboard user from
// EMQX_DASHBOARD__DEFAULT_USERNAME/PASSWORD (admin/public by default) and the API keys of the
// bootstrap file named by EMQX_API_KEY__BOOTSTRAP_FILE when it is mounted from a Secret.
func Credentials(pod *corev1.Pod, env map[string]string, secretData func(name string) map[string][]byte) (users map[string]string, keys []emqxsim.APIKey) {
	user, pw := unquote(env["EMQX_DASHBOARD__DEFAULT_USERNAME"]), unquote(env["EMQX_DASHBOARD__DEFAULT_PASSWORD"])
	if user == "" {
		user = "admin"
	}
	if pw == "" {
		pw = "public"
	}
	users = map[string]string{user: pw}
	file := unquote(env["EMQX_API_KEY__BOOTSTRAP_FILE"])
	c := emqxContainer(pod)
	if file == "" || c == nil || secretData == nil {
		return users, nil
	}
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok && m.SubPath != "" && m.MountPath == file {
			rel, ok = m.SubPath, true
		}
		if !ok {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			key := rel
			for _, item := range v.Secret.Items {
				if item.Path == rel {
					key = item.Key
				}
			}
			return users, ParseBootstrapFile(string(secretData(v.Secret.SecretName)[path.Base(key)]))
		}
	}
	return users, nil
}

// ParseBootstrapFile reads EMQX's bootstrap API key format (SPEC §2.3): one key:secret[:role[:scopes]]
// per non-empty line; loading stops at the first malformed line; a repeated key: the last wins.
func ParseBootstrapFile(content string) []emqxsim.APIKey {
	byKey := map[string]int{}
	var keys []emqxsim.APIKey
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
		k := emqxsim.APIKey{Key: parts[0], Secret: parts[1]}
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

// DataKey names the volume holding the pod's EMQX data: its first PersistentVolumeClaim, which
// survives the pod (StatefulSet volumeClaimTemplates). "" when the data dies with the pod.
func DataKey(pod *corev1.Pod) string {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// SecretReader reads Secrets of one namespace through the API.
func SecretReader(ctx context.Context, cs kubernetes.Interface, ns string) func(name string) map[string][]byte {
	return func(name string) map[string][]byte {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return s.Data
	}
}

// SecretKey adapts a Secret reader to Env's secretKeyRef resolver.
func SecretKey(read func(name string) map[string][]byte) func(name, key string) string {
	return func(name, key string) string { return string(read(name)[key]) }
}

// describe is a short label for logs.
func describe(pod *corev1.Pod) string { return fmt.Sprintf("%s/%s", pod.Namespace, pod.Name) }
