package emqx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// v4Result is the {"code":0,"data":...} envelope of EMQX 4.4 management API answers.
type v4Result struct {
	Code    json.Number     `json:"code"`
	Message any             `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// err turns a 4.4 "HTTP 200 + non-zero code" answer into an *Error.
func (r v4Result) err(method, path string) error {
	if r.Code == "" || r.Code == "0" {
		return nil
	}
	e := &Error{Method: method, Path: path, StatusCode: http.StatusOK, Message: messageText(r.Message)}
	// Map the numeric codes onto the 5.x codes so the predicates work unchanged.
	switch code, _ := strconv.Atoi(string(r.Code)); code {
	case http.StatusBadRequest:
		e.Code = CodeBadRequest
	case http.StatusNotFound:
		e.Code = CodeNotFound
	default:
		e.Code = string(r.Code)
	}
	return e
}

type v4Node struct {
	Node            string `json:"node"`
	Name            string `json:"name"`
	NodeStatus      string `json:"node_status"`
	Version         string `json:"version"`
	OTPRelease      string `json:"otp_release"`
	Connections     int64  `json:"connections"`
	LiveConnections int64  `json:"live_connections"`
}

func (c *Client) nodesV4(ctx context.Context) ([]Node, error) {
	var r v4Result
	if err := c.get(ctx, "/nodes", &r); err != nil {
		return nil, err
	}
	if err := r.err(http.MethodGet, c.prefix+"/nodes"); err != nil {
		return nil, err
	}
	var raw []v4Node
	if err := json.Unmarshal(r.Data, &raw); err != nil {
		return nil, &DecodeError{Method: http.MethodGet, Path: c.prefix + "/nodes", Err: fmt.Errorf("data: %w", err)}
	}
	nodes := make([]Node, 0, len(raw))
	for _, n := range raw {
		name := n.Node
		if name == "" {
			name = n.Name // a stopped node is {"name": ..., "node_status": "Stopped"}
		}
		nodes = append(nodes, Node{
			Node: name, NodeStatus: strings.ToLower(n.NodeStatus), Version: n.Version, OTPRelease: n.OTPRelease,
			Connections: n.Connections, LiveConnections: n.LiveConnections, Edition: "Enterprise",
		})
	}
	return nodes, nil
}
