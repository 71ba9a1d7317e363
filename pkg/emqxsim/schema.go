package emqxsim

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// apiError is an EMQX error answer: {"code": ..., "message": ...}.
type apiError struct {
	status  int
	code    string
	message string
}

func badRequest(msg string) *apiError { return &apiError{http.StatusBadRequest, "BAD_REQUEST", msg} }

type fieldKind int

const (
	kindPosInt   fieldKind = iota // integer >= 1
	kindSeconds                   // duration in seconds: integer, or "10s"/"1m"/"500ms" rounded up
	kindMillis                    // duration in ms: integer, or a duration string
	kindRelative                  // number > 1.0
	kindNodeList                  // non-empty array of strings
	kindString
)

var evacuationSchema = map[string]fieldKind{
	"wait_health_check": kindSeconds, "conn_evict_rate": kindPosInt, "sess_evict_rate": kindPosInt,
	"redirect_to": kindString, "wait_takeover": kindSeconds, "migrate_to": kindNodeList,
}

var rebalanceSchema = map[string]fieldKind{
	"nodes": kindNodeList, "wait_health_check": kindSeconds, "conn_evict_rate": kindPosInt,
	"sess_evict_rate": kindPosInt, "abs_conn_threshold": kindPosInt, "rel_conn_threshold": kindRelative,
	"abs_sess_threshold": kindPosInt, "rel_sess_threshold": kindRelative, "wait_takeover": kindSeconds,
}

// rpcTimeoutFields exist from EMQX 5.9 on.
// maxWaitSeconds bounds wait_health_check and wait_takeover.
const maxWaitSeconds = 4294967

var rpcTimeoutFields = []string{"conn_evict_rpc_timeout", "sess_evict_rpc_timeout"}

// body is a validated request body.
type body struct {
	ints  map[string]int64
	durs  map[string]time.Duration
	rels  map[string]float64
	lists map[string][]string
}

// validateBody applies the request schema as EMQX's dashboard swagger layer does: the first
// offending field gives 400 BAD_REQUEST with a hocon-style validation error as the message.
func validateBody(raw []byte, schema map[string]fieldKind) (body, *apiError) {
	b := body{
		ints:  map[string]int64{},
		durs:  map[string]time.Duration{},
		rels:  map[string]float64{},
		lists: map[string][]string{},
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return b, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return b, badRequest(hoconError("root", "not a JSON object", string(raw)))
	}
	var unknown []string
	for k := range fields {
		if _, ok := schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		msg, _ := json.Marshal(
			map[string]any{
				"kind":           "validation_error",
				"path":           "root",
				"reason":         "unknown_fields",
				"unknown_fields": unknown,
			},
		)
		return b, badRequest(string(msg))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := b.set(k, schema[k], fields[k]); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (b *body) set(key string, kind fieldKind, raw json.RawMessage) *apiError {
	fail := func(reason string) *apiError { return badRequest(hoconError("root."+key, reason, raw)) }
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return fail("unreadable value")
	}
	switch kind {
	case kindPosInt:
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			return fail("Unable to convert to integer")
		}
		if i < 1 {
			return fail("Expected a positive integer")
		}
		b.ints[key] = i
	case kindSeconds, kindMillis:
		d, ok := parseDuration(v, kind)
		limit := time.Duration(maxWaitSeconds) * time.Second
		if kind == kindMillis {
			limit = time.Duration(math.MaxUint32) * time.Millisecond
		}
		if !ok || d < 0 || d > limit {
			return fail("Expected a duration within the permitted range")
		}
		b.durs[key] = d
	case kindRelative:
		n, ok := v.(json.Number)
		f, err := n.Float64()
		if !ok || err != nil {
			return fail("Unable to convert to float")
		}
		if !(f > 1.0) {
			return fail("must be greater than 1.0")
		}
		b.rels[key] = f
	case kindNodeList:
		arr, ok := v.([]any)
		if !ok {
			return fail("Expected an array of node names")
		}
		if len(arr) == 0 {
			return fail("Expected a non-empty list of nodes")
		}
		names := make([]string, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fail("Expected an array of node names")
			}
			names[i] = s
		}
		b.lists[key] = names
	case kindString:
		if _, ok := v.(string); !ok {
			return fail("Expected a string")
		}
	}
	return nil
}

var durationString = regexp.MustCompile(`^([0-9]+)(ms|s|m|h|d)$`)

// parseDuration reads an integer (seconds or ms by kind) or a duration string such as "10s".
// Seconds fields round strings up to whole seconds.
func parseDuration(v any, kind fieldKind) (time.Duration, bool) {
	unit := time.Second
	if kind == kindMillis {
		unit = time.Millisecond
	}
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return 0, false
		}
		return time.Duration(i) * unit, true
	case string:
		m := durationString.FindStringSubmatch(x)
		if m == nil {
			return 0, false
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, false
		}
		per := map[string]time.Duration{
			"ms": time.Millisecond,
			"s":  time.Second,
			"m":  time.Minute,
			"h":  time.Hour,
			"d":  24 * time.Hour,
		}[m[2]]
		d := time.Duration(n) * per
		if kind == kindSeconds {
			d = time.Duration(math.Ceil(d.Seconds())) * time.Second
		}
		return d, true
	}
	return 0, false
}

func hoconError(path, reason string, value any) string {
	if raw, ok := value.(json.RawMessage); ok {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			value = v
		} else {
			value = string(raw)
		}
	}
	msg, _ := json.Marshal(map[string]any{"kind": "validation_error", "path": path, "reason": reason, "value": value})
	return string(msg)
}
