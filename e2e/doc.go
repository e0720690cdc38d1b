// Package e2e holds end-to-end tests of a whole Posta (started in-process by
// internal/postatest) driven by third-party clients: Go client libraries,
// curl and Python. It has no non-test code.
package e2e
