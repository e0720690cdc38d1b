// Package delivery decides what happens to a message the SMTP server
// accepted: recipients are resolved through the directory (aliases,
// catch-all, subaddressing), local ones get the message in their mailbox
// (with a Return-Path header, RFC 5321 4.4), remote ones are put in the
// outbound queue, and quotas are enforced. Mail arriving on the MX listener
// without authentication is checked first (SPF, DKIM, DMARC through
// internal/mailauth): the results go into an Authentication-Results header
// (RFC 8601), a DMARC reject policy refuses the message, a quarantine policy
// sends it to the recipients' Junk. Deliver returns only once every copy is
// durable, which is when the SMTP server may answer 250.
//
// It imports the directory, the mail store, the blob store, the queue,
// internal/mailauth and internal/message; no protocol server.
package delivery
