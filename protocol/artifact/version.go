package artifact

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed software version: semantic versioning (MAJOR.MINOR.PATCH
// with an optional -PRERELEASE and +BUILD), where MINOR and PATCH may be left
// out and a leading "v" is allowed, as Go module versions have it.
type Version struct {
	Nums [3]uint64
	// Pre are the dot-separated pre-release identifiers; none for a release.
	Pre []string
}

// ParseVersion parses a version such as 1.4.2, v2.0.0-rc.1 or 3.1.
func ParseVersion(s string) (Version, error) {
	var v Version
	if s == "" || len(s) > 128 {
		return v, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, e.g. 1.4.2", clip(s))
	}
	core := strings.TrimPrefix(s, "v")
	core, _, _ = strings.Cut(core, "+") // build metadata does not order
	core, pre, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return v, fmt.Errorf("version %q: at most three numbers, MAJOR.MINOR.PATCH", clip(s))
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return v, fmt.Errorf("version %q: %q is not a number without leading zeros", clip(s), p)
		}
		v.Nums[i] = n
	}
	if hasPre {
		if pre == "" {
			return v, fmt.Errorf("version %q: empty pre-release after '-'", clip(s))
		}
		for id := range strings.SplitSeq(pre, ".") {
			if id == "" || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != "" {
				return v, fmt.Errorf("version %q: pre-release identifier %q: 0-9, a-z, A-Z and '-' only", clip(s), id)
			}
			v.Pre = append(v.Pre, id)
		}
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than w. A pre-release is older than its release (1.2.0-rc.1 < 1.2.0).
func (v Version) Compare(w Version) int {
	for i := range v.Nums {
		if v.Nums[i] != w.Nums[i] {
			return cmp(v.Nums[i] > w.Nums[i])
		}
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		a, b := v.Pre[i], w.Pre[i]
		if a == b {
			continue
		}
		na, errA := strconv.ParseUint(a, 10, 64)
		nb, errB := strconv.ParseUint(b, 10, 64)
		switch {
		case errA == nil && errB == nil:
			return cmp(na > nb)
		case errA == nil: // numeric identifiers are older
			return -1
		case errB == nil:
			return 1
		}
		return cmp(a > b)
	}
	switch {
	case len(v.Pre) == len(w.Pre):
		return 0
	case len(v.Pre) > len(w.Pre):
		return 1
	}
	return -1
}

func cmp(greater bool) int {
	if greater {
		return 1
	}
	return -1
}

// CompareVersions compares two version strings (see ParseVersion).
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}
