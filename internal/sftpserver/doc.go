// Package sftpserver serves SFTP (draft-ietf-secsh-filexfer-02, protocol
// version 3) over SSH for Posta, on golang.org/x/crypto/ssh and
// github.com/pkg/sftp's request server, over the same file trees, quotas,
// read-only flags and atomic uploads as FTP (internal/files).
//
// What x/crypto/ssh and pkg/sftp do: the SSH transport, key exchange,
// user-authentication message flow and channel multiplexing (RFC 4251-4254);
// the SFTP packet codec, handle table and request dispatch. What this package
// adds around them:
//
//   - host keys (ed25519, and RSA 3072 for old clients) generated once in
//     <data>/ssh, written atomically, and their fingerprints (hostkeys.go);
//   - guard admission at accept, password and public-key authentication with
//     the guard's delays and bans, MaxAuthTries, a login deadline
//     (server.go, auth.go); authorized keys per account in posta.db and the
//     CLI functions that manage them (keys.go);
//   - the "session" channel with the "sftp" subsystem only: shell, exec,
//     pty-req, env, x11-req, agent forwarding and port forwarding are refused
//     (session.go);
//   - pkg/sftp handlers over internal/files (handlers.go, upload.go), with one
//     error-to-status mapping (status.go), so no internal error text reaches
//     a client;
//   - packet framing counters on the subsystem's streams (framing.go), so the
//     server knows when a session is idle (no request unanswered, no file
//     open) and Shutdown can close idle sessions at once and let transfers
//     finish;
//   - idle timeout through deadlines on the TCP connection;
//   - fewer, fuller writes: SFTP responses are coalesced before they become
//     SSH packets (framing.go), and SSH packets before they become write(2)
//     calls (conn.go), as sshd does with its buffers; the client then has
//     about half the packets to decrypt on a download.
//
// Uploads (handlers.go openWrite, upload.go): a new file, or an OPEN with
// TRUNC, is written to a temporary file and renamed over the name at CLOSE
// after an fsync (files.Replace), so other sessions see the old file or the
// new one and a failed transfer leaves nothing; writes that arrive out of
// order are held (bounded) until the gap before them is filled, gaps left
// at CLOSE read as zeros. An existing file opened without TRUNC is written
// in place from its end (a resume); APPEND appends. Rewriting bytes already
// written, or writing inside an existing file, is refused with
// SSH_FX_OP_UNSUPPORTED: internal/files has no in-place random write.
//
// Import rule: this package must not import internal/server (which imports
// it to register the protocol) nor another protocol server.
package sftpserver
