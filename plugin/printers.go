package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// apiVersion is the group and version of what the plugin prints with -o: its results are not
// stored anywhere, but carry a kind as kubectl's objects do, so that cli-runtime's printers (json,
// yaml, name, jsonpath, go-template) and the tools that read kubectl's output take them.
const apiVersion = "kubectl-emqx.io/v1alpha1"

// outputFormats are -o's values besides a command's table ones ("wide" for status).
func outputFormats() []string {
	return []string{"json", "yaml", "name", "jsonpath=", "jsonpath-file=", "go-template=", "go-template-file="}
}

// objectPrinter is cli-runtime's printer for -o format.
func objectPrinter(format string) (printers.ResourcePrinter, error) {
	f := genericclioptions.NewPrintFlags("").WithDefaultOutput(format)
	p, err := f.ToPrinter()
	if err != nil {
		return nil, fmt.Errorf("--output %q: %w", format, err)
	}
	return p, nil
}

// addOutputFlag registers -o: the command's own formats (table; "" is its default) and those of
// cli-runtime's printers, completed on TAB.
func addOutputFlag(cmd *cobra.Command, format *string, table ...string) {
	all := slices.Concat(table, outputFormats())
	cmd.Flags().StringVarP(format, "output", "o", "", "output format: "+strings.Join(all, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", completeWords(all...))
}

// validatePrinter checks -o before anything runs; table are the command's own formats.
func validatePrinter(format string, table ...string) error {
	if format == "" || slices.Contains(table, format) {
		return nil
	}
	_, err := objectPrinter(format)
	if genericclioptions.IsNoCompatiblePrinterError(errors.Unwrap(err)) {
		return fmt.Errorf("--output %q: use one of %s", format,
			strings.Join(slices.Concat(table, outputFormats()), ", "))
	}
	return err // a template that does not parse says why
}

// object is v (a report or a result) as an object of kind: v's own fields, with apiVersion,
// kind and metadata (name, namespace).
func object(kind, namespace, name string, v any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	m["apiVersion"], m["kind"] = apiVersion, kind
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	m["metadata"] = meta
	return &unstructured.Unstructured{Object: m}, nil
}

// printObject prints obj with -o's printer.
func printObject(w io.Writer, format string, obj runtime.Object) error {
	p, err := objectPrinter(format)
	if err != nil {
		return err
	}
	return p.PrintObj(obj, w)
}

// list is objs as a List, as kubectl prints several objects.
func list(objs []*unstructured.Unstructured) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
	for _, o := range objs {
		l.Items = append(l.Items, *o)
	}
	return l
}
