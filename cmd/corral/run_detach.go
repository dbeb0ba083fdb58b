package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/image/containerroot"
)

// monitorCommand is the hidden subcommand that runs a detached container
// (`corral run -d`): it creates and starts the container as its init's
// parent, so that it alone can wait(2) for the init and record the exit
// status and an OOM kill in the container's state (inspect, list); with
// --rm it then deletes the container and its log. Only a parent learns
// an exit status: without the monitor it would be lost (issue 18).
const monitorCommand = "__run-monitor"

// monitorRequest is what `corral run -d` hands its monitor on stdin.
type monitorRequest struct {
	ID           string      `json:"id"`
	Bundle       string      `json:"bundle"`
	Spec         *specs.Spec `json:"spec"`
	ImageRoot    string      `json:"imageRoot,omitempty"`
	NoNewKeyring bool        `json:"noNewKeyring,omitempty"`
	Remove       bool        `json:"remove,omitempty"`
	Log          string      `json:"log"`
}

// monitorReply is what the monitor answers on fd 3 once the container
// runs (Code 0) or could not start (the error and the exit status run
// should give).
type monitorReply struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// runDetached starts the monitor in its own session with the container's
// output going to ROOT/ID.log, waits for its word that the container
// runs, prints the id and returns.
func runDetached(rt *runtime.Runtime, f *runFlags, id string, rs *runSpec) (int, error) {
	logPath := detachLogPath(rt, id)
	if err := os.MkdirAll(runtimeRoot(rt), 0o700); err != nil {
		rs.release()
		return exitRuntimeError, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		rs.release()
		return exitRuntimeError, fmt.Errorf("detach log: %w", err)
	}
	defer logf.Close()
	req, err := json.Marshal(monitorRequest{ID: id, Bundle: rs.Bundle, Spec: rs.Spec, ImageRoot: rs.imageRoot,
		NoNewKeyring: f.noNewKeyring, Remove: f.rm, Log: logPath})
	if err != nil {
		rs.release()
		return exitRuntimeError, err
	}
	reply, err := startMonitor(rt, req, logf)
	if err != nil {
		// The monitor made nothing, or undid it.
		rs.release()
		os.Remove(logPath)
		return exitRuntimeError, err
	}
	if reply.Code != 0 {
		return reply.Code, errors.New(reply.Error)
	}
	fmt.Println(id)
	return 0, nil
}

// startMonitor runs `corral --root ROOT __run-monitor` detached (own
// session, stdin the request, output the log) and reads its reply.
func startMonitor(rt *runtime.Runtime, req []byte, logf *os.File) (*monitorReply, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	in, inw, err := os.Pipe()
	if err != nil {
		wr.Close()
		return nil, err
	}
	cmd := exec.Command(exe, "--root", runtimeRoot(rt), monitorCommand)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, logf, logf
	cmd.ExtraFiles = []*os.File{wr}
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	err = cmd.Start()
	in.Close()
	wr.Close()
	if err != nil {
		inw.Close()
		return nil, fmt.Errorf("start the container's monitor: %w", err)
	}
	go func() { inw.Write(req); inw.Close() }()
	var reply monitorReply
	if err := json.NewDecoder(rd).Decode(&reply); err != nil {
		state, _ := cmd.Process.Wait()
		return nil, fmt.Errorf("the container's monitor gave no word (%v, %v); see %s", err, state, logf.Name())
	}
	// The monitor lives on as the container's parent; not ours to wait for.
	cmd.Process.Release()
	return &reply, nil
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:    monitorCommand,
		Short:  "internal: run a detached container as its parent and record how it ends",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := monitorMain(newRuntime(), os.Stdin, os.NewFile(3, "reply")); code != 0 {
				return ExitStatus(code)
			}
			return nil
		},
	})
}

// monitorMain creates and starts the container, replies, waits for the
// init, records its exit and, with Remove, deletes the container and its
// log. Returns the monitor's exit status.
func monitorMain(rt *runtime.Runtime, in io.Reader, replyTo *os.File) int {
	// The user's ^C and hangups belong to the container, not to us.
	signal.Ignore(unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)
	reply := func(code int, err error) {
		r := monitorReply{Code: code}
		if err != nil {
			r.Error = err.Error()
		}
		json.NewEncoder(replyTo).Encode(r)
		replyTo.Close()
	}
	var req monitorRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		reply(exitRuntimeError, fmt.Errorf("monitor: bad request: %w", err))
		return 1
	}
	c, err := rt.Create(req.ID, runtime.CreateOpts{Bundle: req.Bundle, Spec: req.Spec, Foreground: true,
		Stdout: os.Stdout, Stderr: os.Stderr, NoNewKeyring: req.NoNewKeyring, ImageRoot: req.ImageRoot})
	if err != nil {
		if req.ImageRoot != "" {
			containerroot.Release(req.ImageRoot)
		}
		reply(execErrorCode(err), err)
		return 1
	}
	if err := c.Start(); err != nil {
		c.Delete(true)
		reply(execErrorCode(err), err)
		return 1
	}
	reply(0, nil)
	code, err := c.Wait()
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral: container %s: wait: %v\n", req.ID, err)
		return 1
	}
	// A container deleted meanwhile (delete -f) has no state to write to.
	if _, err := c.RecordExit(code); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "corral: container %s: record the exit status: %v\n", req.ID, err)
	}
	if req.Remove {
		if err := c.Delete(true); err != nil && !errors.Is(err, runtime.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "corral: container %s: --rm: %v\n", req.ID, err)
			return 1
		}
		os.Remove(req.Log)
	}
	return 0
}

// runtimeRoot is the state root the runtime uses.
func runtimeRoot(rt *runtime.Runtime) string {
	if rt.Root == "" {
		return runtime.DefaultRoot
	}
	return rt.Root
}
