// Package config holds Posta's configuration: the TOML file's types, the
// embedded defaults every key falls back to, validation that names the
// offending key, and the commented file `posta init` writes.
//
// It imports nothing of Posta's own: every other package may import it, and
// protocol servers read their Limits from here so that no limit is written as
// a literal anywhere else.
package config
