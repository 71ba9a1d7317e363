package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The chart's README lists every value of values.yaml with its default and comment, as
// `make chart-docs` writes it.
func TestChartREADMEValuesAreGenerated(t *testing.T) {
	chart := filepath.Join("..", "..", "manifests", "helm", "emqx-webhook")
	table, err := tableOf(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := replace(doc, table)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatal("the chart README's values table is not values.yaml's: run make chart-docs")
	}
	for _, v := range []string{
		"`watchNamespaces`",
		"`clientAuth.enabled`",
		"`networkPolicy.admissionFrom`",
		"`image.digest`",
	} {
		if !bytes.Contains([]byte(table), []byte(v)) {
			t.Errorf("the table lacks %s", v)
		}
	}
}
