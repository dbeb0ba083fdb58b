package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// OCI hooks (runtime-spec config.md#posix-platform-hooks), run where and
// when the spec says, each with the container's state as JSON on stdin:
//
//	prestart, createRuntime   create, after the namespaces exist and the
//	                          mounts are made, before pivot_root; by the
//	                          parent, in the runtime's namespaces
//	createContainer           right after, by the init, in the container's
//	                          mount namespace (host paths still visible)
//	startContainer            start, by the init after the fifo, inside the
//	                          container (paths resolve in its root)
//	poststart                 after start, by `corral start`; errors logged
//	poststop                  after delete, by `corral delete`; errors logged
//
// This is how podman and CRI-O hand their hooks directories (corralfs's
// view hook among them) to the runtime.

// hasCreateHooks says whether the init must stop before pivot_root.
func hasCreateHooks(h *specs.Hooks) bool {
	return h != nil && (len(h.Prestart) > 0 || len(h.CreateRuntime) > 0 || len(h.CreateContainer) > 0)
}

// runHooks runs hooks in order; the first failure stops the rest.
func runHooks(stage string, hooks []specs.Hook, state *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	data, err := json.Marshal(state)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		if err := runHook(h, data); err != nil {
			return fmt.Errorf("%s hook #%d (%s): %w", stage, i, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout != nil && *h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// hookState is the state hooks see.
func (c *Container) hookState(status specs.ContainerState) *specs.State {
	pid := c.st.Pid
	if status == specs.StateStopped {
		pid = 0
	}
	return &specs.State{
		Version: specs.Version, ID: c.st.ID, Status: status, Pid: pid,
		Bundle: c.st.Bundle, Annotations: c.st.Spec.Annotations,
	}
}

// createHooks is the init's rootfs step between the mounts and pivot_root:
// ask the parent to run prestart and createRuntime, then run
// createContainer here.
func (rc *rootfsCtx) createHooks() error {
	if !hasCreateHooks(rc.spec.Hooks) {
		return nil
	}
	if err := rc.conn.send(&syncMsg{Type: msgHooks}); err != nil {
		return err
	}
	m, _, err := rc.conn.expect(msgHooksDone)
	if err != nil {
		return err
	}
	return runHooks("createContainer", rc.spec.Hooks.CreateContainer, m.State)
}
