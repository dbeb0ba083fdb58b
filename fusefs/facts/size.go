package facts

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses a memory size as Docker does, the one grammar of every
// size flag (`corral run -m`, `--memory-swap`, `corral update --memory`):
// a number, fractions allowed, with an optional binary unit b, k, m, g, t
// or p (case-insensitive, optionally followed by "b" or "ib": 256m, 256MB,
// 1GiB, 1.5g); plain bytes without a unit.
func ParseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0, fmt.Errorf("invalid size %q", orig)
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "b"), "i")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		case 'p':
			mult = 1 << 50
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(s, "eEx+-") {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit b, k, m, g or t (e.g. 256m)", orig)
	}
	bytes := v * float64(mult)
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", orig)
	}
	return int64(bytes), nil
}
