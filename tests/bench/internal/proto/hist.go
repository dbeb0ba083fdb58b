package proto

import (
	"math"
	"math/bits"
)

// Hist is a log-linear latency histogram in nanoseconds: each power of two
// is split into subBuckets linear buckets, so any recorded value is known
// to within 1/subBuckets (3%) and histograms from many threads, rounds and
// processes merge by adding counts. Counts are kept sparse for JSON.
type Hist struct {
	Counts map[int]int64 `json:"counts"`
	N      int64         `json:"n"`
	SumNs  int64         `json:"sum_ns"`
	MaxNs  int64         `json:"max_ns"`
}

const subBits = 5 // 32 sub-buckets per power of two

// bucketOf maps a latency to its bucket index.
func bucketOf(ns int64) int {
	if ns < 1<<subBits {
		return int(max(ns, 0))
	}
	exp := 63 - bits.LeadingZeros64(uint64(ns)) // ns in [2^exp, 2^(exp+1))
	shift := exp - subBits
	sub := int(ns>>shift) - 1<<subBits // 0..31
	return (shift+1)<<subBits + sub
}

// bucketMid is a representative value (the middle) of bucket b.
func bucketMid(b int) float64 {
	if b < 1<<subBits {
		return float64(b)
	}
	shift := b>>subBits - 1
	sub := b & (1<<subBits - 1)
	lo := float64(int64(sub+1<<subBits) << shift)
	return lo + float64(int64(1)<<shift)/2
}

// Add records one latency.
func (h *Hist) Add(ns int64) {
	if h.Counts == nil {
		h.Counts = map[int]int64{}
	}
	h.Counts[bucketOf(ns)]++
	h.N++
	h.SumNs += ns
	h.MaxNs = max(h.MaxNs, ns)
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o Hist) {
	if h.Counts == nil {
		h.Counts = map[int]int64{}
	}
	for b, c := range o.Counts {
		h.Counts[b] += c
	}
	h.N += o.N
	h.SumNs += o.SumNs
	h.MaxNs = max(h.MaxNs, o.MaxNs)
}

// Quantile returns the q-quantile (0..1) in nanoseconds, NaN when empty.
func (h *Hist) Quantile(q float64) float64 {
	if h.N == 0 {
		return math.NaN()
	}
	rank := int64(math.Ceil(q * float64(h.N)))
	rank = min(max(rank, 1), h.N)
	maxB := 0
	for b := range h.Counts {
		maxB = max(maxB, b)
	}
	var seen int64
	for b := 0; b <= maxB; b++ {
		seen += h.Counts[b]
		if seen >= rank {
			return min(bucketMid(b), float64(h.MaxNs))
		}
	}
	return float64(h.MaxNs)
}
