package emqx

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EMQX error codes seen in load_rebalance responses (API.md §3.11, §2.2).
const (
	CodeBadRequest        = "BAD_REQUEST"
	CodeNotFound          = "NOT_FOUND"
	CodeRPCError          = "RPC_ERROR"
	CodeNodeEvacuating    = "NODE_EVACUATING"
	CodeUnsupportedMedia  = "UNSUPPORTED_MEDIA_TYPE"
	CodeAuthHeaderError   = "AUTHORIZATION_HEADER_ERROR"
	CodeBadAPIKey         = "BAD_API_KEY_OR_SECRET"
	CodeUnauthorizedRole  = "UNAUTHORIZED_ROLE"
	CodeAPIKeyNotAllowed  = "API_KEY_NOT_ALLOW"
	CodeTokenTimeOut      = "TOKEN_TIME_OUT"
	CodeBadToken          = "BAD_TOKEN"
	CodeBadUsernameOrPwd  = "BAD_USERNAME_OR_PWD"
	CodeLoginLocked       = "LOGIN_LOCKED"
	CodeBadMFAToken       = "BAD_MFA_TOKEN"
	messagePathNotFound   = "Request Path Not Found"
	messageNodeNotFound   = "Node not found"
	messageInvalidNodes   = "Invalid nodes"
	messageNodesUnavail   = "Nodes unavailable"
	reasonAlreadyStarted  = "already_started"
	reasonNotStarted      = "not_started"
	reasonNotInCluster    = "node_not_in_cluster"
	reasonNothingToBal    = "nothing_to_balance"
	reasonEvictionAgentBz = "eviction_agent_busy"
)

// Error is a non-2xx answer from EMQX (or, on 4.4, a 200 with a non-zero code).
// Its text carries the HTTP status, EMQX's code and message, and what to do next.
type Error struct {
	Method     string
	Path       string
	StatusCode int
	Code       string
	Message    string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "emqx %s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", Printable(e.Code, 64))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", Printable(e.Message, 512))
	}
	if h := e.Hint(); h != "" {
		fmt.Fprintf(&b, " (%s)", h)
	}
	return b.String()
}

// Hint says what to do about the error, or "" when there is nothing specific to say.
func (e *Error) Hint() string {
	switch {
	case e.noRebalanceAPI():
		return "this EMQX has no rebalance API: evacuation and rebalance need EMQX Enterprise 5.0.4+ or EMQX 5.9+"
	case RefusalHint(e.Code) != "":
		return RefusalHint(e.Code)
	case e.StatusCode == http.StatusUnauthorized:
		return "check the API key and secret, or the dashboard username and password"
	case e.StatusCode == http.StatusForbidden:
		return "these credentials may not do this: use an administrator API key (with scope " +
			"cluster_operations on EMQX 5.10.4+)"
	case e.nodeNotFound():
		return "that node is not running in this EMQX cluster; check the name against the cluster's node list"
	case e.hasReason(reasonAlreadyStarted):
		return "one is already running there; watch it, or stop it before starting again"
	case e.hasReason(reasonNotStarted):
		return "nothing is running there to stop"
	case e.hasReason(reasonNothingToBal):
		return "the cluster is already balanced within the thresholds; lower the thresholds to force a rebalance"
	case e.hasReason(reasonEvictionAgentBz):
		return "the node is busy with another evacuation, rebalance or purge; wait for it or stop it first"
	case strings.HasPrefix(e.Message, messageInvalidNodes), strings.HasPrefix(e.Message, messageNodesUnavail):
		return "every named node must be running and not evacuating, rebalancing or purging"
	case e.Code == CodeRPCError:
		return "a node did not answer EMQX's internal RPC; check that every node is running, then retry"
	case e.Code == CodeBadRequest:
		return "a request field has a wrong type or value"
	case e.StatusCode >= 500:
		return "EMQX could not serve the request; retry later"
	}
	return ""
}

func (e *Error) hasReason(reason string) bool {
	return e.Code == CodeBadRequest && strings.Contains(e.Message, reason)
}

func (e *Error) nodeNotFound() bool {
	return e.StatusCode == http.StatusNotFound && strings.HasPrefix(e.Message, messageNodeNotFound)
}

// noRebalanceAPI: a 404 from the router rather than from a handler. The router answers
// "Request Path Not Found" (or HTML/plain text when JSON was not accepted).
func (e *Error) noRebalanceAPI() bool {
	return e.StatusCode == http.StatusNotFound && !e.nodeNotFound() &&
		(strings.Contains(e.Path, "/load_rebalance") || strings.Contains(e.Path, "/node_eviction"))
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Printable makes text that came from EMQX safe to show anywhere (logs, Events, admission
// messages, a terminal): one line, control and other non-printable characters escaped (no
// terminal escape sequence survives), at most max runes (then "…").
func Printable(s string, max int) string {
	s = oneLine(s)
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		n++
		if unicode.IsPrint(r) && r != utf8.RuneError {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func matches(err error, pred func(*Error) bool) bool {
	e, ok := asError(err)
	return ok && pred(e)
}

// IsAlreadyStarted: an evacuation or rebalance already runs on that node.
func IsAlreadyStarted(err error) bool {
	return matches(err, func(e *Error) bool { return e.hasReason(reasonAlreadyStarted) })
}

// IsNotStarted: stop was called where nothing runs.
func IsNotStarted(err error) bool {
	return matches(err, func(e *Error) bool { return e.hasReason(reasonNotStarted) })
}

// IsNotInCluster: force_leave of a node EMQX does not know (never seen, or already removed).
func IsNotInCluster(err error) bool {
	return matches(err, func(e *Error) bool { return e.hasReason(reasonNotInCluster) })
}

// IsNothingToBalance: the cluster is balanced within the thresholds (or has fewer than 2 groups).
func IsNothingToBalance(err error) bool {
	return matches(err, func(e *Error) bool { return e.hasReason(reasonNothingToBal) })
}

// IsNodesUnavailable: a node list names a node that is down or busy. EMQX sends it as HTTP 400
// with code NOT_FOUND.
func IsNodesUnavailable(err error) bool {
	return matches(err, func(e *Error) bool { return strings.HasPrefix(e.Message, messageNodesUnavail) })
}

// RefusalHint says what to do about a refusal of credentials that is not just a wrong secret, ""
// for any other code. The client's errors and the list of credentials tried both say it.
func RefusalHint(code string) string {
	switch code {
	case CodeLoginLocked:
		return "EMQX locked the dashboard user after 5 failed logins in 5 minutes (EMQX 5.9+), for 10 minutes; " +
			"an API key is never locked: name a Secret with api-key/api-secret in " + annCredentialsSecret +
			", or use the operator's bootstrap key"
	case CodeBadMFAToken:
		return "the dashboard user has multi-factor authentication, which a program cannot pass; use an API key"
	case CodeUnauthorizedRole:
		return "the API key's role or scopes do not allow it: give it role administrator and, " +
			"on EMQX 5.10.4+, 6.1.2+ and 6.2.1+, the scope cluster_operations " +
			"(bootstrap file line key:secret:administrator:cluster_operations)"
	}
	return ""
}

// IsHTTPStatus reports that EMQX answered err with one of these HTTP statuses.
func IsHTTPStatus(err error, statuses ...int) bool {
	return matches(err, func(e *Error) bool { return slices.Contains(statuses, e.StatusCode) })
}

// annCredentialsSecret is pkg/cluster's AnnCredentialsSecret, named in hints (emqx cannot import it).
const annCredentialsSecret = "emqx.kubectl-emqx.io/credentials-secret"

// IsUnauthorized: missing or wrong credentials, or an expired token.
func IsUnauthorized(err error) bool {
	return matches(err, func(e *Error) bool { return e.StatusCode == http.StatusUnauthorized })
}

// UnreachableError means no HTTP answer came back: connection refused, DNS, TLS, timeout.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf(
		"emqx API at %s is unreachable: %v (check the address and that the dashboard listener, "+
			"port 18083 by default, is reachable)",
		e.URL,
		e.Err,
	)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable: the API gave no answer at all.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// DecodeError means EMQX answered 2xx with a body this client cannot read.
type DecodeError struct {
	Method string
	Path   string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf(
		"emqx %s %s: unexpected response body: %v (is this an EMQX dashboard listener of a supported version?)",
		e.Method,
		e.Path,
		e.Err,
	)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ResponseTooLargeError means the body exceeded the client's limit.
type ResponseTooLargeError struct {
	Method string
	Path   string
	Limit  int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf(
		"emqx %s %s: response body larger than %d bytes; refusing to read it (raise the client's response limit if "+
			"the cluster is that large)",
		e.Method,
		e.Path,
		e.Limit,
	)
}
