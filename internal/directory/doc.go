// Package directory is Posta's user directory: domains, accounts (the login
// name is the full address), aliases with catch-all and subaddressing, quotas,
// and password verifiers (argon2id for plaintext logins, SCRAM-SHA-256 keys
// so SCRAM works without the plaintext).
//
// It lives in posta.db beside the mail store and is read on every lookup, so
// the CLI can change it while a server runs. It implements sasl.Credentials;
// it imports no protocol server.
package directory
