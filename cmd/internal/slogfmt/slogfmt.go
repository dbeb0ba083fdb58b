// Package slogfmt builds the log handler corralfs's processes share: text
// (the default) or one JSON object per line.
package slogfmt

import (
	"io"
	"log/slog"
)

// Handler writes records at level and above to w in format ("json", or
// anything else for text).
func Handler(format string, w io.Writer, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
