// Package sftpload holds what bench/sftp-vs-openssh.sh needs besides
// OpenSSH's own client: serve_test.go runs a whole Posta with SFTP (built
// with `go test -c`), because the posta binary does not register sftp nor
// have `posta user key add` yet. Once it does, the script can start the
// binary instead and this package can go.
package sftpload
