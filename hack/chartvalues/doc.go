// Command chartvalues writes the values table of the emqx-webhook chart's README from its
// values.yaml: every value with its default and the comment above it, between the README's
// <!-- values:begin --> and <!-- values:end --> markers (make chart-docs). Its test fails when the
// README's table is not what values.yaml says.
package main
