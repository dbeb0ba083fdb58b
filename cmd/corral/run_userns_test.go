package main

import (
	"fmt"
	"testing"

	"github.com/corral-dev/corral/runtime/subid"
)

// The rootless maps: the caller's id where --userns puts it, the ranges
// filling every other container id in order, none mapped twice.
func TestOwnPlusRanges(t *testing.T) {
	ranges := []subid.Range{{Start: 200000, Size: 65536}, {Start: 400000, Size: 10}}
	auto := fmt.Sprint(ownPlusRanges(1000, ranges, false))
	if want := "[{0 1000 1} {1 200000 65536} {65537 400000 10}]"; auto != want {
		t.Errorf("auto: %s, want %s", auto, want)
	}
	keep := fmt.Sprint(ownPlusRanges(1000, ranges, true))
	if want := "[{1000 1000 1} {0 200000 1000} {1001 201000 64536} {65537 400000 10}]"; keep != want {
		t.Errorf("keep-id: %s, want %s", keep, want)
	}
}
