package emqxsim

import (
	"fmt"
	"testing"
	"time"
)

// hundredNodes is a cluster of 100 nodes, node i holding conns(i) clients with persistent sessions.
func hundredNodes(b *testing.B, conns func(i int) int64) (*Cluster, []NodeConfig) {
	var nodes []NodeConfig
	for i := range 100 {
		nodes = append(nodes, NodeConfig{Name: fmt.Sprintf("emqx@emqx-%d.emqx-headless.default.svc.cluster.local", i),
			Sessions: -1, Connections: conns(i)})
	}
	c, err := New(Config{Nodes: nodes, Reconnect: DefaultReconnect, Start: time.Unix(0, 0)})
	if err != nil {
		b.Fatal(err)
	}
	return c, nodes
}

// rebalancingCluster is 100 nodes holding 1,000,000 connections, 50 donors with 20,000 each,
// in the evicting_conns phase of a rebalance with evicted clients reconnecting.
func rebalancingCluster(b *testing.B) (*Cluster, func() bool) {
	c, nodes := hundredNodes(b, func(i int) int64 { return 20000 * int64(1-i/50) })
	coord := c.node(nodes[0].Name)
	o := defaultRebalanceOpts()
	o.waitHealthCheck, o.absConn, o.relConn = 0, 1, 1.0001
	c.mu.Lock()
	err := coord.startRebalance(o, nil)
	c.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	c.Advance(2 * time.Second) // into evicting_conns, with reconnects in flight
	return c, func() bool { return coord.coord != nil && coord.coord.state == rebEvictingConns }
}

// BenchmarkRebalanceTick100Nodes1MConnections measures one coordinator tick (1 s of simulated
// time): every donor evicts 500 connections and the previous tick's 25,000 clients reconnect.
func BenchmarkRebalanceTick100Nodes1MConnections(b *testing.B) {
	benchTicks(b, rebalancingCluster)
}

// benchTicks measures one tick (1 s of simulated time) of a cluster build makes, building it
// again whenever the phase under test (evicting) has ended; no client may be lost.
func benchTicks(b *testing.B, build func(*testing.B) (c *Cluster, evicting func() bool)) {
	c, evicting := build(b)
	b.ReportAllocs()
	for b.Loop() {
		if !evicting() {
			b.StopTimer()
			c, evicting = build(b)
			b.StartTimer()
		}
		c.Advance(TickInterval)
	}
	if s := c.Snapshot(); s.ConnectedClients+s.ReconnectingClients != 1000000 || s.LostSessions != 0 {
		b.Fatalf("clients were lost: %+v", s)
	}
}

// evacuatingCluster is 100 nodes holding 10,000 connections each (1,000,000), one of them
// evacuating at 500 connections a second into the other 99, its evicted clients reconnecting.
func evacuatingCluster(b *testing.B) (*Cluster, func() bool) {
	c, nodes := hundredNodes(b, func(int) int64 { return 10000 })
	n := c.node(nodes[99].Name)
	o := defaultEvacOpts()
	o.waitHealthCheck = 0
	c.mu.Lock()
	err := n.startEvacuation(o)
	c.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	c.Advance(2 * time.Second) // into evicting_conns, with reconnects in flight
	return c, func() bool { return n.evac != nil && n.evac.state == evacEvictingConns }
}

// BenchmarkEvacuationTick100Nodes1MConnections measures one tick (1 s of simulated time) of an
// evacuation at 100 nodes: 500 connections evicted, the previous tick's clients reconnecting.
func BenchmarkEvacuationTick100Nodes1MConnections(b *testing.B) {
	benchTicks(b, evacuatingCluster)
}
