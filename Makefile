# corral: a container runtime and an LXCFS-style view daemon.
# `make demo` and `make test` are the two commands the README promises work
# on a fresh Debian machine as root.

GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system.
UNITDIR   ?= $(PREFIX)/lib/systemd/system
# `make install HOOK=1` also installs the OCI hook (`corral hook`) that binds
# the views into EVERY podman and CRI-O container on the host; off by default.
# podman and CRI-O read /usr/share/containers/oci/hooks.d (PREFIX=/usr) and
# /etc/containers/oci/hooks.d; with PREFIX=/usr/local pass HOOKSDIR= one of them.
HOOK      ?=
HOOKSDIR  ?= $(PREFIX)/share/containers/oci/hooks.d
UNITS     := corralfs.service corralfs-seccomp-keeper.service
# Static binaries: they run unchanged inside containers and the cgroup v2 VM.
export CGO_ENABLED = 0
# The version and commit both binaries print (--version, corralfs status).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILDINFO := github.com/corral-dev/corral/cmd/internal/buildinfo
# One build id for every binary of a build (an ELF build-id note, -B): corral
# runs its containers' inits from the corral-init beside it only when the
# two ids match (runtime/initbinary.go). It is a hash of what the binaries
# are built from, so an unchanged tree relinks nothing.
BUILD_ID  ?= $(shell { $(GO) version; echo $(VERSION) $(COMMIT); git ls-files -z -co --exclude-standard -- '*.go' go.mod go.sum | sort -z | xargs -0 cat 2>/dev/null; } | sha256sum | cut -c1-40)
GOFLAGS_BUILD ?= -trimpath -ldflags "-B 0x$(BUILD_ID) -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)"
BINARIES  := corral corral-init corralfs corralfs-keeper corral-nri

# Packages the tests need; installed by test-deps when missing.
TEST_DEBS := busybox-static uidmap qemu-system-x86 cpio procps file runc podman containerd default-jre-headless

.PHONY: all build install uninstall test test-deps test-unit test-vm test-oci test-oci-quick test-oci-vm test-cri demo bench vet fmt clean

all: build

build:
	@mkdir -p bin
	$(GO) build $(GOFLAGS_BUILD) -o bin/ ./cmd/...

# install says every file it writes; the units' /usr/local/bin becomes $(BINDIR).
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	@for b in $(BINARIES); do install -m 0755 bin/$$b $(DESTDIR)$(BINDIR)/ && echo "installed $(DESTDIR)$(BINDIR)/$$b"; done
	@for u in $(UNITS); do sed 's|/usr/local/bin|$(BINDIR)|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u && echo "installed $(DESTDIR)$(UNITDIR)/$$u"; done
ifneq ($(HOOK),)
	install -d $(DESTDIR)$(HOOKSDIR)
	@sed 's|/usr/local/bin|$(BINDIR)|g' install/hooks.d/corralfs.json > $(DESTDIR)$(HOOKSDIR)/corralfs.json && chmod 0644 $(DESTDIR)$(HOOKSDIR)/corralfs.json
	@echo "installed $(DESTDIR)$(HOOKSDIR)/corralfs.json: every podman and CRI-O container started from now on gets the views"
else
	@echo "not installed: the OCI hook for podman/CRI-O containers (make install HOOK=1 adds it to $(HOOKSDIR))"
endif

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(BINARIES)) $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(HOOKSDIR)/corralfs.json

# test-deps installs with apt-get only what is missing, and says so; then
# containerd 2 for the CRI test (go install into a cache directory keyed by
# version, CORRAL_TEST_CACHE, default /var/cache/corral-test; a no-op once there).
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "test-deps: installing$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@GO=$(GO) tests/cri/install-containerd.sh

vet:
	$(GO) vet ./...
	cd tests/cri && $(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Unit, golden and root integration tests on this host (cgroup v1/hybrid here).
test-unit: build
	$(GO) test -count=1 -timeout 15m ./...
	cd third_party/go-fuse && $(GO) test -count=1 -run TestCorralPatch ./fuse/

# The same cgroup and integration tests on a real cgroup v2 kernel in a VM.
# run.sh builds bin/* itself and reports a build failure alongside the test
# results instead of stopping before the VM. VM_PKGS, VM_TEST_ARGS, ... : see run.sh.
test-vm:
	tests/vm/run.sh

# The OCI runtime-tools validation suite against bin/corral and runc, side
# by side, compared with tests/oci/expectations (tests/oci/run.sh).
test-oci: build
	tests/oci/run.sh $(OCI_CASES)

# The subset of test-oci that make test runs (every area, 1.5-3 min).
test-oci-quick: build
	tests/oci/run.sh --quick

# Pods through the CRI on containerd 2 (tests/cri, a module of its own):
# the NRI plugin and the corral RuntimeClass handler, ~10-20 s.
test-cri: build
	cd tests/cri && $(GO) test -count=1 -timeout 5m -v ./...

# The runtime-tools subset and the cgroup v2 VM run side by side: the VM is
# emulation (CPU), the OCI suite mostly waits on short-lived containers, and
# together they take about the time of the VM alone. The VM's output is
# printed after the OCI suite's, and either failing fails the target.
test-oci-vm: build
	@vmlog=$$(mktemp); tests/vm/run.sh >"$$vmlog" 2>&1 & vm=$$!; \
	tests/oci/run.sh --quick; oci=$$?; \
	wait $$vm; vmrc=$$?; echo "== cgroup v2 VM (ran alongside the OCI suite)"; cat "$$vmlog"; rm -f "$$vmlog"; \
	[ $$oci -eq 0 ] || echo "test-oci-vm: the OCI suite failed (exit $$oci)"; \
	[ $$vmrc -eq 0 ] || echo "test-oci-vm: the cgroup v2 VM failed (exit $$vmrc)"; \
	[ $$oci -eq 0 ] && [ $$vmrc -eq 0 ]

test: test-deps vet test-unit test-cri test-oci-vm

demo: build
	tests/demo.sh

# Benchmarks (root; not part of make test): BENCH_ARGS="--help" lists the knobs.
bench: build
	tests/bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf bin
