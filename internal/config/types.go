package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "30s" or
// "10m", because TOML has no duration type and bare integers invite unit
// mistakes.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use a number with a unit: 90s, 10m, 2h)", b)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written in TOML as a string with an optional unit:
// "50MiB", "1 GB", "512k", "100". Binary (KiB, MiB, GiB, TiB) and decimal
// (kB, MB, GB, TB) units are both accepted; a bare K/M/G/T means binary.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"tb", 1000 * 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1}, {"", 1},
}

// ParseSize parses the Size syntax; it is also used by the CLI's --quota.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range sizeUnits {
		if !strings.HasSuffix(t, u.suffix) {
			continue
		}
		num := strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
		if num == "" {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || !(f >= 0) || math.IsInf(f, 0) { // !(f >= 0) also catches NaN
			continue
		}
		v := f * float64(u.mult)
		if v > float64(1<<62) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return Size(v), nil
	}
	return 0, fmt.Errorf("%q is not a size (use a number with an optional unit: 512KiB, 50MiB, 2GB)", s)
}

// String formats the size with the largest binary unit that divides it.
func (s Size) String() string {
	v := int64(s)
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.mult == 0 {
			return strconv.FormatInt(v/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(v, 10)
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
