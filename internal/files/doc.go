// Package files is Posta's file store: each account's tree of files, served
// over FTP and SFTP. It is protocol-neutral: it knows paths, files, quotas and
// durability, never a reply code.
//
// # Layout and the jail
//
// Each account's tree lives in <data>/files/<account address>, created on
// first use. Every operation goes through an os.Root opened on that
// directory, so neither "..", an absolute path nor a symbolic link (one
// planted on disk, or created later by a protocol) can reach outside it: the
// kernel-level check of os.Root refuses the escape and the error maps to
// ErrOutside. Client paths are first cleaned with Join (the session's
// working directory joined with the argument, path.Clean, always absolute
// inside the tree); the result is what protocols show and log.
//
// An optional anonymous area (Options.AnonymousDir) is a read-only tree
// rooted at a configured directory, without quota.
//
// # Quota
//
// Account.QuotaBytes (0 = none) caps the bytes of regular files in the tree.
// The usage is computed once per account and process (a walk of the tree at
// first use) and then kept by the store's own writes, in one counter per
// account shared by every session of every protocol. A write that would
// pass the quota fails with ErrQuota; concurrent uploads each reserve a
// bounded slice of the remaining space before copying it, so together they
// cannot overshoot. Changes made to the tree behind Posta's back are seen at
// the next start.
//
// # Uploads
//
// Create(path, Replace) is atomic: the bytes go to a temporary file in the
// hidden directory /.posta-tmp of the same tree (same filesystem, inside the
// jail, invisible to clients), and Commit fsyncs it, renames it over the
// target and fsyncs the target's directory, so an acknowledged upload is
// durable and a failed one leaves the old file untouched. Append and Resume
// (FTP APPE and REST+STOR) write the real file in place, which is not atomic
// by nature: a failed append leaves what arrived, which is what a later
// resume needs. Commit fsyncs those too. Temporary files left by a crash are
// removed at the account's first use after a start.
//
// Upload.ReadFrom copies from a reader with zero-copy when it can: given a
// *net.TCPConn (or an *io.LimitedReader of one) Linux splices the socket into
// the file. Reading uses plain *os.File values, so a protocol can hand one
// and a socket to io.Copy and get sendfile.
//
// Import rule: this package imports only the standard library. Protocol
// servers import it; it imports none of them, nor config or directory (the
// caller passes an Account).
package files
