// Package ftpserver serves FTP (RFC 959) and FTPS (RFC 2228, RFC 4217) over
// each account's file tree (internal/files), written in-house: no FTP server
// library offers TLS session reuse checks, STRU, HOST, full MLSD facts and
// the sendfile path together.
//
// One Server serves one listener: "ftp" (explicit TLS with AUTH TLS) or
// "ftps" (implicit TLS from the first byte). Its shape follows STYLE.md:
//
//   - wire.go is the grammar: command lines, PORT/EPRT/EPSV arguments and
//     reply formatting, pure and fuzzed;
//   - commands.go is the one table of verbs with the flags the dispatcher
//     (conn.go) enforces: login required, argument required, writes refused
//     on a read-only tree, what may run during a transfer, what keeps a REST
//     marker;
//   - handlers return a reply or an error; replyFor (reply.go) is the one
//     place errors become codes, and our own failures are 451 with the cause
//     logged, never shown;
//   - each transfer runs on its own goroutine, so the session goroutine
//     keeps reading the control connection and serves ABOR, STAT and QUIT
//     meanwhile; replies are written whole under one mutex;
//   - plain binary STOR hands the *net.TCPConn to the *os.File through
//     io.Copy (Linux splices); plain binary RETR calls sendfile(2) on a
//     socket made blocking for the transfer (sendfile_linux.go: Go's
//     non-blocking io.Copy path parks in the netpoller each time the send
//     buffer fills, which measured ~10-20% slower than vsftpd; io.Copy
//     elsewhere); TLS and TYPE A use buffers;
//   - FTPS data connections use the listener's one tls.Config and must
//     resume a TLS session of their own control connection (tls.go);
//   - admission (connections per IP, bans) and failed-login delays come
//     from internal/guard; Shutdown says 421 to idle sessions at once, lets
//     transfers finish until its context ends, then cuts.
//
// Limits are in Limits, none zero. Logs never contain a password or file
// contents.
//
// Import rule: this package imports config (Listener), directory (the
// Account type), files, guard, sasl (its error) and tlsconf, never
// internal/server (which imports it), another protocol server or the mail
// store.
package ftpserver
