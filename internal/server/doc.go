// Package server wires Posta together: it opens the data directory, the
// database, the directory, TLS and the guard, binds every listener of every
// enabled protocol, runs the protocol servers, and shuts them down in order.
//
// It is the only package (with cmd/posta) that imports protocol servers.
package server
