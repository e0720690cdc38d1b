//go:build !unix

package database

// Lock is a no-op where flock(2) is missing: nothing stops two processes
// from using one data directory there.
func Lock(dataDir string) (release func(), err error) { return func() {}, nil }
