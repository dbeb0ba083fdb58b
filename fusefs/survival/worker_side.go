package survival

import (
	"fmt"
	"os"
	"strconv"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The worker's side of the protocol: what a worker inherits from the
// supervisor that started it (worker_proc.go), and the handshake: Ready
// once it can serve, WaitRelease before it reads a request.

// Inherited is what the supervisor handed a worker.
type Inherited struct {
	Info   string      // the EnvInfo value (empty: started by hand)
	FuseFD int         // the connection: serve it with go-fuse, adopting Init
	Init   fuse.InitIn // the kernel's INIT request the supervisor answered
	// Control is the control socket's listener, when Info said there is
	// one (ControlListener); the rest are nil when the supervisor passed
	// none (an older supervisor during an upgrade, or not asked for).
	Handles  *HandleStore
	Counters *Counters
	Requests *os.File // the relay's socket: go-fuse's RequestSource
	InFlight *Journal // the relay's journal: go-fuse's InFlight
	Metrics  *os.File // the metrics listener
}

// Inherit takes the descriptors the supervisor passed. They are kept from
// whatever the worker starts (a sysinfo keeper outlives it: holding the
// connection would keep a dead mount alive).
func Inherit() (*Inherited, error) {
	for fd := fuseFD; fd <= controlFD; fd++ {
		unix.CloseOnExec(fd)
	}
	in := &Inherited{Info: os.Getenv(EnvInfo), FuseFD: fuseFD}
	var err error
	if in.Init, err = DecodeInit(os.Getenv(envFuseInit)); err != nil {
		return nil, err
	}
	if f, err := inheritedFD(envHandlesFD, "corralfs-handles"); err != nil {
		return nil, err
	} else if f != nil {
		if in.Handles, err = OpenHandleStore(f); err != nil {
			return nil, err
		}
	}
	if f, err := inheritedFD(envCountersFD, "corralfs-counters"); err != nil {
		return nil, err
	} else if f != nil {
		if in.Counters, err = OpenCounters(f); err != nil {
			return nil, err
		}
	}
	if in.Requests, in.InFlight, err = inheritedRelay(); err != nil {
		return nil, err
	}
	if in.Metrics, err = inheritedFD(envMetricsFD, "corralfs-metrics"); err != nil {
		return nil, err
	}
	return in, nil
}

// ControlListener is the control socket's listener (the caller knows from
// its Info whether the supervisor passed one).
func (in *Inherited) ControlListener() *os.File { return os.NewFile(controlFD, "control") }

// Ready tells the supervisor the worker can serve.
func (in *Inherited) Ready() {
	ready := os.NewFile(readyFD, "ready")
	_, _ = ready.Write([]byte{'R'})
	ready.Close()
}

// WaitRelease waits until the supervisor lets the worker serve; false: the
// supervisor is gone (or retired this worker before it served).
func (in *Inherited) WaitRelease() bool {
	var b [1]byte
	n, _ := os.NewFile(goFD, "go").Read(b[:])
	return n == 1 && b[0] == 'G'
}

// SupervisorGone is closed when the supervisor has died.
func (in *Inherited) SupervisorGone() <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = os.NewFile(aliveFD, "alive").Read(b[:]) // EOF: the supervisor died
		close(gone)
	}()
	return gone
}

// inheritedRelay opens the request socket and the in-flight journal the
// supervisor passes on kernels without FUSE_NOTIFY_RESEND (its relay reads
// the device: relay.go); nil, nil when it passed none.
func inheritedRelay() (*os.File, *Journal, error) {
	sock, err := inheritedFD(envRelayFD, "corralfs-requests")
	if err != nil {
		return nil, nil, err
	}
	jf, err := inheritedFD(envJournalFD, "corralfs-inflight")
	if err != nil || (sock == nil) != (jf == nil) {
		return nil, nil, fmt.Errorf("relay descriptors %s=%q %s=%q: want both (%v)", envRelayFD, os.Getenv(envRelayFD), envJournalFD, os.Getenv(envJournalFD), err)
	}
	if sock == nil {
		return nil, nil, nil
	}
	j, err := openJournal(jf)
	if err != nil {
		return nil, nil, err
	}
	return sock, j, nil
}

// inheritedFD is the descriptor the supervisor named in the environment
// variable env (nil when it named none), kept from what we start.
func inheritedFD(env, name string) (*os.File, error) {
	v := os.Getenv(env)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not a descriptor", env, v)
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name), nil
}
