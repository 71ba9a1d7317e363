package emqxsim

import (
	"regexp"
	"strconv"
	"strings"
)

var plainAtom = regexp.MustCompile(`^[a-z][a-zA-Z0-9_@]*$`)

// erlAtom prints a node name as Erlang prints an atom: quoted unless it is a plain atom.
func erlAtom(s string) string {
	if plainAtom.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

// erlAtomList prints ['a','b'].
func erlAtomList(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = erlAtom(n)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// erlBinaryList prints [<<"a">>,<<"b">>].
func erlBinaryList(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = `<<"` + n + `">>`
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// erlFloat is a float that always prints with a decimal point, as Erlang's JSON encoder does
// (100.0, not 100): clients that decode goals into integers fail against the simulator as they
// would against EMQX.
type erlFloat float64

func (f erlFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return []byte(s), nil
}

func erlFloatPtr(f *float64) *erlFloat {
	if f == nil {
		return nil
	}
	v := erlFloat(*f)
	return &v
}
