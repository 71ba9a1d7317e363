package emqxsim

import "testing"

// Clients that leave end their sessions: the counts fall, nothing is lost, and no more can leave
// than are connected.
func TestDisconnectEndsSessionsWithoutLoss(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD}, {Name: nodeR}}})
	if err := h.c.Connect(nodeD, 300, 200); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Connect(nodeR, 100, 100); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Disconnect(250); err != nil {
		t.Fatal(err)
	}
	s := h.c.Snapshot()
	var live, persistent int64
	for _, n := range s.Nodes {
		live += n.LiveConnections
		persistent += n.PersistentSessions
	}
	if live != 150 || s.LostSessions != 0 || s.DisconnectedSessions != 0 {
		t.Fatalf(
			"after 250 of 400 left: %d live, %d lost, %d disconnected sessions",
			live,
			s.LostSessions,
			s.DisconnectedSessions,
		)
	}
	if persistent > 150 {
		t.Fatalf("%d persistent sessions for 150 clients", persistent)
	}
	if err := h.c.Disconnect(151); err == nil {
		t.Fatal("151 of 150 clients left")
	}
	if err := h.c.Disconnect(-1); err == nil {
		t.Fatal("a negative count was accepted")
	}
	if err := h.c.Disconnect(150); err != nil {
		t.Fatal(err)
	}
	for _, n := range h.c.Snapshot().Nodes {
		if n.LiveConnections != 0 || n.PersistentSessions != 0 {
			t.Fatalf(
				"%s keeps %d connections, %d sessions after everyone left",
				n.Name,
				n.LiveConnections,
				n.PersistentSessions,
			)
		}
	}
}
