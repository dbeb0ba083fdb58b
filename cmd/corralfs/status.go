package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/fusefs"
)

// daemonStatus is what the control socket answers: one JSON object per
// connection, then the daemon closes it.
type daemonStatus struct {
	Pid        int           `json:"pid"`
	Mountpoint string        `json:"mountpoint"`
	Started    time.Time     `json:"started"`
	Uptime     string        `json:"uptime"`
	Goroutines int           `json:"goroutines"`
	RSSBytes   uint64        `json:"rss_bytes"`
	FS         fusefs.Status `json:"fs"`
}

type controlServer struct {
	ln   net.Listener
	path string
}

// listenControl answers status requests on a unix socket (root only: the
// socket is 0600).
func listenControl(path, mp string, fs *fusefs.FS, log *slog.Logger) (*controlServer, error) {
	// A socket left by a killed daemon is in the way; a live daemon on the
	// same socket cannot exist (it would hold the mount we just made).
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	started := time.Now()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Warn("control socket", "err", err)
				}
				return
			}
			st := daemonStatus{
				Pid: os.Getpid(), Mountpoint: mp, Started: started,
				Uptime:     time.Since(started).Round(time.Second).String(),
				Goroutines: runtime.NumGoroutine(), RSSBytes: selfRSS(), FS: fs.Status(),
			}
			conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = json.NewEncoder(conn).Encode(st)
			conn.Close()
		}
	}()
	return &controlServer{ln: ln, path: path}, nil
}

func (c *controlServer) Close() {
	c.ln.Close()
	os.Remove(c.path)
}

// selfRSS reads VmRSS from /proc/self/status, in bytes.
func selfRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func runStatus(args []string) int {
	fl := pflag.NewFlagSet("corralfs status", pflag.ContinueOnError)
	sock := fl.String("control-socket", defaultControlSocket, "the running daemon's control socket")
	asJSON := fl.Bool("json", false, "print the raw JSON answer")
	fl.Usage = func() {
		fmt.Fprintf(os.Stdout, "Usage: corralfs status [flags]\n\nAsks the running corralfs how it is doing.\n\nFlags:\n%s", fl.FlagUsages())
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	conn, err := net.DialTimeout("unix", *sock, 2*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: is corralfs running? %v\n", err)
		return 1
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := io.ReadAll(conn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: %v\n", err)
		return 1
	}
	if *asJSON {
		os.Stdout.Write(raw)
		return 0
	}
	var st daemonStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: bad answer: %v\n", err)
		return 1
	}
	fmt.Printf("mountpoint:   %s\npid:          %d\nuptime:       %s\ncontainers:   %d (load sampled: %d)\nopens:        %d\nreads:        %d\nfallbacks:    %d\nopen handles: %d\ngoroutines:   %d\nrss:          %.1f MiB\n",
		st.Mountpoint, st.Pid, st.Uptime, st.FS.Containers, st.FS.LoadSampled, st.FS.Opens, st.FS.Reads,
		st.FS.Fallbacks, st.FS.OpenHandles, st.Goroutines, float64(st.RSSBytes)/(1<<20))
	return 0
}
