package proto

import (
	"math"
	"testing"
)

// Every value lands in a bucket whose middle is within 1/32 of it, and
// quantiles of a known distribution come out where they should.
func TestHistPrecisionAndQuantiles(t *testing.T) {
	for _, v := range []int64{0, 1, 31, 32, 33, 63, 64, 100, 1000, 12345, 999_999, 1 << 40} {
		mid := bucketMid(bucketOf(v))
		if math.Abs(mid-float64(v)) > float64(v)/32+1 {
			t.Errorf("value %d: bucket middle %.0f too far", v, mid)
		}
	}
	var a, b Hist
	for i := int64(1); i <= 1000; i++ {
		if i%2 == 0 {
			a.Add(i * 1000)
		} else {
			b.Add(i * 1000)
		}
	}
	a.Merge(b)
	if a.N != 1000 {
		t.Fatalf("N = %d", a.N)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500_000}, {0.99, 990_000}, {1, 1_000_000}} {
		if got := a.Quantile(c.q); math.Abs(got-c.want) > c.want/32 {
			t.Errorf("q%.2f = %.0f, want ~%.0f", c.q, got, c.want)
		}
	}
	var empty Hist
	if !math.IsNaN(empty.Quantile(0.5)) {
		t.Error("empty histogram has a median")
	}
}
