// Command emqx-sim runs a simulated EMQX cluster for demos and end-to-end tests.
//
//	emqx-sim --nodes N --listen HOST:PORT ...   a fixed cluster, node i on PORT+i
//	emqx-sim follow --kubeconfig K ...          one node per Running EMQX pod, on its pod IP
package main
