//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package store

import "math"

// diskFree cannot measure free space on this platform: the disk reserve is
// not enforced there.
func diskFree(string) (int64, error) { return math.MaxInt64, nil }
