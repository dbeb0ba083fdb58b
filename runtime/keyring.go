package runtime

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Session keyrings (issue 11), as runc does them: without this the
// container's processes share the session keyring of whoever ran corral,
// so they can read the keys in it (and, through the user keyring a login
// session links in, host root's keys) and plant keys for the caller to use.
//
// The init joins a new session keyring named _ses.<id> before anything
// else of the container is set up (so before the seccomp filter, which
// refuses keyctl), and makes it searchable by its owner so that `corral
// exec` can join the same one by name; an exec init joins it by name too.
// --no-new-keyring (CreateOpts.NoNewKeyring) keeps the caller's, as runc.
// A kernel without keyrings (ENOSYS) is not an error, as in runc.

// sessionKeyringName is the container's session keyring (runc's name).
func sessionKeyringName(id string) string { return "_ses." + id }

// joinSessionKeyring replaces the calling thread's session keyring with
// the one named name (created when it does not exist) and returns its id.
func joinSessionKeyring(name string) (int, error) {
	id, err := unix.KeyctlJoinSessionKeyring(name)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return -1, nil
		}
		return -1, fmt.Errorf("join session keyring %s: %w", name, err)
	}
	return id, nil
}

// newSessionKeyring is the container init's step: join a fresh _ses.<id>
// and add search permission (user search without a user namespace, other
// search with one, as runc) so exec can find it by name.
func newSessionKeyring(id string, spec *specs.Spec) error {
	ring, err := joinSessionKeyring(sessionKeyringName(id))
	if err != nil || ring < 0 {
		return err
	}
	search := uint32(0x080000) // KEY_USR_SEARCH
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.UserNamespace {
				search = 0x08 // KEY_OTH_SEARCH
			}
		}
	}
	perm, err := keyPerm(ring)
	if err != nil {
		return err
	}
	if err := unix.KeyctlSetperm(ring, perm|search); err != nil {
		return fmt.Errorf("session keyring permissions: %w", err)
	}
	return nil
}

// keyPerm reads a key's permission mask from its description
// ("type;uid;gid;perm;description", perm in hex).
func keyPerm(id int) (uint32, error) {
	desc, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		return 0, fmt.Errorf("describe session keyring: %w", err)
	}
	f := strings.SplitN(desc, ";", 5)
	if len(f) < 5 {
		return 0, fmt.Errorf("describe session keyring: unexpected %q", desc)
	}
	p, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("describe session keyring: unexpected %q", desc)
	}
	return uint32(p), nil
}
