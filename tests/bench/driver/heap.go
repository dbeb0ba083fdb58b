package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Heap profile of the serving worker after the memory section's reads
// (issue 15): what the daemon retains, from the control socket's
// /debug/pprof, so the report says where its RSS goes.

// heapProfile saves the worker's heap profile to dir and returns the
// top entries by in-use bytes (go tool pprof -top), the heap figures of
// runtime.MemStats and the number of goroutines.
func heapProfile(sock, dir, binary string) (top []string, stats map[string]string, err error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	get := func(path string) ([]byte, error) {
		resp, err := client.Get("http://corralfs" + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	stats = map[string]string{}
	text, err := get("/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		for _, k := range []string{"HeapAlloc", "HeapInuse", "HeapSys", "HeapIdle", "HeapReleased", "Sys", "NumGC"} {
			if v, ok := strings.CutPrefix(sc.Text(), "# "+k+" = "); ok {
				stats[k] = v
			}
		}
		// "# Stack = StackInuse / StackSys"
		if v, ok := strings.CutPrefix(sc.Text(), "# Stack = "); ok {
			stats["StackInuse"], _, _ = strings.Cut(v, " / ")
		}
	}
	if g, err := get("/debug/pprof/goroutine?debug=1"); err == nil {
		first, _, _ := strings.Cut(string(g), "\n")
		stats["goroutines"] = strings.TrimPrefix(first, "goroutine profile: total ")
	}
	raw, err := get("/debug/pprof/heap")
	if err != nil {
		return nil, stats, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, stats, err
	}
	file := filepath.Join(dir, "corralfs-heap-"+time.Now().UTC().Format("20060102-150405")+".pb.gz")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		return nil, stats, err
	}
	stats["profile"] = file
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=8", "-sample_index=inuse_space", binary, file).Output()
	if err != nil {
		return nil, stats, fmt.Errorf("go tool pprof: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			return lines[i:], stats, nil
		}
	}
	return lines, stats, nil
}
