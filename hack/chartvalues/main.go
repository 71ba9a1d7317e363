package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

const (
	begin = "<!-- values:begin -->"
	end   = "<!-- values:end -->"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: chartvalues VALUES.yaml README.md")
		os.Exit(2)
	}
	if err := rewrite(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "chartvalues:", err)
		os.Exit(1)
	}
}

// rewrite puts the table of values into readme between the markers.
func rewrite(values, readme string) error {
	table, err := tableOf(values)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	out, err := replace(doc, table)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	return os.WriteFile(readme, out, 0o644)
}

func replace(doc []byte, table string) ([]byte, error) {
	b, e := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if b < 0 || e < b {
		return nil, errors.New("no " + begin + " … " + end + " section")
	}
	return append(append(append([]byte{}, doc[:b+len(begin)]...), "\n"+table...), doc[e:]...), nil
}

// tableOf is the markdown table of the values file's leaves.
func tableOf(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s is not a mapping", path)
	}
	var rows []string
	walk(root.Content[0], "", "", &rows)
	return "| value | default | what it does |\n|---|---|---|\n" + strings.Join(rows, "\n") + "\n", nil
}

// walk adds a row per leaf; a leaf without a comment of its own says its parent's.
func walk(m *yaml.Node, prefix, inherited string, rows *[]string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		doc := comment(k.HeadComment)
		if doc == "" {
			doc = inherited
		}
		name := prefix + k.Value
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
			walk(v, name+".", doc, rows)
			continue
		}
		def, _ := yaml.Marshal(v)
		*rows = append(
			*rows,
			fmt.Sprintf(
				"| `%s` | `%s` | %s |",
				name,
				strings.TrimSpace(string(def)),
				strings.ReplaceAll(doc, "|", "\\|"),
			),
		)
	}
}

// comment is a YAML head comment as one line of text.
func comment(c string) string {
	var words []string
	for _, l := range strings.Split(c, "\n") {
		words = append(words, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")))
	}
	return strings.TrimSpace(strings.Join(words, " "))
}
