// Package certstest makes certificate authorities and the certificates they sign, for tests: a
// CA, serving and client certificates for given names, as tls.Certificate or PEM.
//
// It imports nothing of this module.
package certstest
