// Package delivery decides what happens to a message the SMTP server
// accepted: recipients are resolved through the directory (aliases,
// catch-all, subaddressing), local ones get the message in their mailbox
// (with a Return-Path header, RFC 5321 4.4), remote ones are put in the
// outbound queue, and quotas are enforced. Deliver returns only once every
// copy is durable, which is when the SMTP server may answer 250.
//
// It imports the directory, the mail store, the blob store, the queue and
// internal/message; no protocol server.
package delivery
