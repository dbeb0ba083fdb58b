package main

import (
	"testing"
	"time"
)

// TestAgo: docker's ages, singular for one ("1 minutes ago" was printed).
func TestAgo(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		age  time.Duration
		want string
	}{
		{5 * time.Second, "5 seconds ago"},
		{90 * time.Second, "1 minute ago"},
		{3 * time.Minute, "3 minutes ago"},
		{61 * time.Minute, "1 hour ago"},
		{30 * time.Hour, "30 hours ago"},
		{72 * time.Hour, "3 days ago"},
		{24 * 40 * time.Hour, "40 days ago"},
		{24 * 95 * time.Hour, "3 months ago"},
	} {
		if got := ago(now.Add(-c.age)); got != c.want {
			t.Errorf("ago(%v) = %q, want %q", c.age, got, c.want)
		}
	}
	if got := ago(time.Time{}); got != "unknown" {
		t.Errorf("ago(zero) = %q", got)
	}
}
