package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/tests/bench/internal/proto"
	"github.com/corral-dev/corral/tests/testutil"
)

// container is what the bench calls a container: a real cgroup under
// /corral-test with limits, and the reader program as the init of its own
// pid and mount namespaces inside it. corralfs and LXCFS both identify a
// caller the same way (the init of its pid namespace, then that init's
// cgroups), so to them this is a container like any other.
type container struct {
	name   string
	cg     *testutil.Cgroup
	limits testutil.CgroupLimits
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Scanner
}

// newContainer creates the cgroup and starts the reader in it. On cgroup
// v2 the reader is cloned straight into the cgroup; on v1 it is moved in
// right after it starts, before it is given any work.
func newContainer(t *tb, env *env, name string, lim testutil.CgroupLimits) (*container, error) {
	c := &container{name: name, limits: lim}
	if err := catch(func() { c.cg = testutil.NewCgroup(t, name, lim) }); err != nil {
		return nil, err
	}
	cmd := exec.Command(env.reader)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		// If the driver dies without cleaning up, its containers die too.
		Pdeathsig: syscall.SIGKILL,
	}
	if c.cg.Mode == testutil.CgroupModeV2 {
		fd, err := syscall.Open(c.cg.Dir(""), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	logf, err := os.OpenFile(filepath.Join(env.work, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the reader of %s: %w", name, err)
	}
	c.cmd = cmd
	// Registered after the cgroup's removal, so it runs before it.
	undo.add(c.stop)
	if c.cg.Mode != testutil.CgroupModeV2 {
		if err := c.cg.AddProc(cmd.Process.Pid); err != nil {
			return nil, fmt.Errorf("moving the reader into %s: %w", c.cg.Path, err)
		}
	}
	c.stdout = bufio.NewScanner(out)
	c.stdout.Buffer(make([]byte, 1<<20), 16<<20)
	return c, nil
}

func (c *container) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	c.cmd = nil
}

// send hands the reader a job; result waits for its answer.
func (c *container) send(job proto.Job) error {
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	_, err = c.stdin.Write(append(b, '\n'))
	if err != nil {
		return fmt.Errorf("%s: sending a job: %w", c.name, err)
	}
	return nil
}

func (c *container) result() (proto.Result, error) {
	var r proto.Result
	if !c.stdout.Scan() {
		err := c.stdout.Err()
		if err == nil {
			err = io.EOF
		}
		return r, fmt.Errorf("%s: reader gone: %w (see its log)", c.name, err)
	}
	if err := json.Unmarshal(c.stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("%s: bad result: %w", c.name, err)
	}
	return r, nil
}

// do runs one job and waits for its result.
func (c *container) do(job proto.Job) (proto.Result, error) {
	if err := c.send(job); err != nil {
		return proto.Result{}, err
	}
	return c.result()
}

// memTotalKB is what a correct meminfo view says for the container's limit.
func (c *container) memTotalKB() uint64 { return uint64(c.limits.MemoryBytes) / 1024 }

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostMemTotalKB is the host's MemTotal, what unvirtualised files say.
func hostMemTotalKB() uint64 {
	h, _ := facts.ReadHostMemory()
	return h.Total / 1024
}
