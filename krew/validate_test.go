package krew

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
	"sigs.k8s.io/yaml"
)

type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string     `json:"version"`
		Homepage         string     `json:"homepage"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Platforms        []platform `json:"platforms"`
	} `json:"spec"`
}

type platform struct {
	Selector *struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []any             `json:"matchExpressions"`
	} `json:"selector"`
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
	Bin    string `json:"bin"`
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256RE = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// validate applies krew's rules to the manifest in file (its name must match the file's).
func validate(file string, raw []byte) (*manifest, error) {
	var m manifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	switch {
	case m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2":
		return nil, fmt.Errorf("apiVersion %q", m.APIVersion)
	case m.Kind != "Plugin":
		return nil, fmt.Errorf("kind %q", m.Kind)
	case !nameRE.MatchString(m.Metadata.Name):
		return nil, fmt.Errorf("name %q is not a valid plugin name", m.Metadata.Name)
	case m.Metadata.Name+".yaml" != filepath.Base(file):
		return nil, fmt.Errorf("plugin name %q does not match the file name %s", m.Metadata.Name, filepath.Base(file))
	case !semver.IsValid(m.Spec.Version) || !strings.HasPrefix(m.Spec.Version, "v"):
		return nil, fmt.Errorf("version %q is not a semantic version with a leading v", m.Spec.Version)
	case m.Spec.ShortDescription == "" || strings.Contains(strings.TrimSpace(m.Spec.ShortDescription), "\n") ||
		len(m.Spec.ShortDescription) > 50:
		return nil, fmt.Errorf("shortDescription %q must be one line of at most 50 characters", m.Spec.ShortDescription)
	case strings.TrimSpace(m.Spec.Description) == "":
		return nil, fmt.Errorf("description is empty")
	case !strings.HasPrefix(m.Spec.Homepage, "https://"):
		return nil, fmt.Errorf("homepage %q is not an https URL", m.Spec.Homepage)
	case len(m.Spec.Platforms) == 0:
		return nil, fmt.Errorf("no platforms")
	}
	seen := map[string]bool{}
	for i, p := range m.Spec.Platforms {
		if p.Selector == nil || len(p.Selector.MatchExpressions) > 0 || len(p.Selector.MatchLabels) == 0 {
			return nil, fmt.Errorf("platform %d: selector must use matchLabels only", i)
		}
		for k := range p.Selector.MatchLabels {
			if k != "os" && k != "arch" {
				return nil, fmt.Errorf("platform %d: selector label %q is neither os nor arch", i, k)
			}
		}
		pair := p.Selector.MatchLabels["os"] + "/" + p.Selector.MatchLabels["arch"]
		if seen[pair] {
			return nil, fmt.Errorf("platform %d: %s is matched twice", i, pair)
		}
		seen[pair] = true
		switch {
		case !strings.HasPrefix(p.URI, "https://") ||
			!(strings.HasSuffix(p.URI, ".tar.gz") || strings.HasSuffix(p.URI, ".zip")):
			return nil, fmt.Errorf("platform %d: uri %q must be an https .tar.gz or .zip", i, p.URI)
		case !sha256RE.MatchString(p.SHA256):
			return nil, fmt.Errorf("platform %d: sha256 %q is not 64 lowercase hex digits", i, p.SHA256)
		case p.Bin == "":
			return nil, fmt.Errorf("platform %d: no bin", i)
		case p.Selector.MatchLabels["os"] == "windows" && !strings.HasSuffix(p.Bin, ".exe"):
			return nil, fmt.Errorf("platform %d: windows bin %q lacks .exe", i, p.Bin)
		}
	}
	return &m, nil
}

// render fills the template as hack/dist.sh does, with made-up checksums.
func render(t *testing.T, version string, sums func(osArch string) string) []byte {
	t.Helper()
	raw, err := os.ReadFile("emqx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{ .TagName }}", version, "{{ .BaseURL }}", "https://example.com/releases/"+version).
		Replace(string(raw))
	for _, os := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			s = strings.ReplaceAll(s, fmt.Sprintf(`{{ sha256 "%s_%s" }}`, os, arch), sums(os+"_"+arch))
		}
	}
	return []byte(s)
}

func TestTemplateRendersToAValidManifest(t *testing.T) {
	m, err := validate("emqx.yaml", render(t, "v1.2.3", func(string) string { return strings.Repeat("ab", 32) }))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Spec.Platforms) != 6 {
		t.Fatalf("%d platforms, want linux, darwin, windows × amd64, arm64", len(m.Spec.Platforms))
	}
}

func TestValidationCatchesBadManifests(t *testing.T) {
	good := string(render(t, "v1.2.3", func(string) string { return strings.Repeat("ab", 32) }))
	for name, bad := range map[string]string{
		"version":     strings.Replace(good, "version: v1.2.3", "version: 1.2.3", 1),
		"sha256":      strings.Replace(good, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1),
		"duplicate":   strings.Replace(good, "{os: linux, arch: arm64}", "{os: linux, arch: amd64}", 1),
		"selector":    strings.Replace(good, "{os: linux, arch: amd64}", "{os: linux, arch: amd64, distro: debian}", 1),
		"uri":         strings.Replace(good, "_linux_amd64.tar.gz", "_linux_amd64.rpm", 1),
		"name":        strings.Replace(good, "name: emqx", "name: EMQX", 1),
		"windows exe": strings.Replace(good, "bin: kubectl-emqx.exe", "bin: kubectl-emqx", 1),
	} {
		if _, err := validate("emqx.yaml", []byte(bad)); err == nil {
			t.Errorf("%s: a bad manifest passed", name)
		}
	}
	if _, err := validate("other.yaml", []byte(good)); err == nil {
		t.Error("a file name that differs from the plugin name passed")
	}
}
