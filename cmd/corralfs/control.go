package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corral-dev/corral/fusefs"
)

// The control socket (root only, 0600) speaks HTTP:
//
//	GET /status          the daemonStatus JSON (`corralfs status`);
//	                     ?containers=1 adds the per-container listing
//	GET /metrics         Prometheus text (the same as --metrics-listen)
//	GET /debug/pprof/    Go's profiles of the serving worker (heap,
//	                     goroutine, profile?seconds=N, ...): `go tool pprof
//	                     http+unix://` is not a thing, so fetch with
//	                     `curl --unix-socket SOCK http://corralfs/debug/pprof/heap`
//
// A client that connects and sends nothing (corralfs status before
// 2026-12) still gets the JSON status after a short wait.

// legacyWait is how long a silent client waits for its JSON status.
const legacyWait = 150 * time.Millisecond

// controlMux is the control socket's HTTP handler.
func controlMux(status func() daemonStatus, containers func() []fusefs.ContainerInfo, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := status()
		if r.URL.Query().Get("containers") != "" {
			st.Containers = containers()
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveControl answers the control socket ln until it is closed.
func serveControl(ln net.Listener, status func() daemonStatus, containers func() []fusefs.ContainerInfo, reg *prometheus.Registry, log *slog.Logger) {
	pl := &legacyListener{Listener: ln, status: status, conns: make(chan net.Conn), done: make(chan struct{})}
	go pl.acceptLoop(log)
	srv := &http.Server{Handler: controlMux(status, containers, reg), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(pl) }()
}

// legacyListener hands HTTP connections to the server and answers silent
// ones (old clients) with the JSON status itself.
type legacyListener struct {
	net.Listener
	status func() daemonStatus
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
}

func (l *legacyListener) acceptLoop(log *slog.Logger) {
	defer l.once.Do(func() { close(l.done) })
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("control socket", "err", err)
			}
			return
		}
		go l.sort(c)
	}
}

// sort waits briefly for the client's first byte: none means an old client
// that only reads.
func (l *legacyListener) sort(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(legacyWait))
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = json.NewEncoder(c).Encode(l.status())
		}
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case l.conns <- &peekedConn{Conn: c, r: br}:
	case <-l.done:
		c.Close()
	}
}

func (l *legacyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// peekedConn reads what sort peeked first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }
