// Package certs is emqx-webhook's built-in self-signed certificate rotator: a CA and a serving
// certificate kept in one Secret that every replica shares, written to the webhook server's
// certificate directory, and the CA injected into the webhook configurations' caBundle.
//
// It may import pkg/ packages only; a client-go clientset and a clock are injected.
package certs
