//go:build !linux

package files

import "os"

// startWriteback is a Linux optimisation (writeback_linux.go); elsewhere
// Commit's fsync does all the work.
func startWriteback(*os.File, int64, int64) {}
