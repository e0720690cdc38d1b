//go:build linux

package files

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE (linux/fs.h): start writeback
// of dirty pages in the range, without waiting for it.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to begin writing a range of f to disk now,
// so the fsync at Commit finds most of a large upload already written and
// the disk works while the network does (durability costs max(network,
// disk) rather than their sum). Errors are ignored: Commit's fsync is what
// reports them.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}
