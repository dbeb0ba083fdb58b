#!/usr/bin/env bash
# tests/vm/run.sh - run the project's tests on a real cgroup v2 kernel.
#
# The dev host is cgroup v1 (hybrid); most users run pure cgroup v2. This
# boots a throwaway VM (Debian's cloud kernel, initramfs only, no disk) with
# cgroup2 at /sys/fs/cgroup, fuse, overlay and zram swap, and runs each
# package's static test binary inside it as root with CI=true, so nothing
# may skip. Self-contained: needs only qemu-system-x86, cpio, file,
# busybox-static (make test-deps) and apt access to fetch the kernel once.
#
# usage: tests/vm/run.sh [PACKAGE...]     (default: $VM_PKGS)
# env:
#   VM_PKGS          packages (go patterns)   default: ./cgroupreader/... ./fusefs/... ./runtime/... ./tests/...
#   VM_TEST_ARGS     extra test flags, e.g. "-test.run TestMeminfo"
#   VM_TEST_TIMEOUT  -test.timeout per binary (default 8m); the guest kills at +30s
#   VM_TIMEOUT       whole-VM wall limit in seconds (default 900)
#   VM_MEM=1536 VM_SMP=2 VM_SWAP_MB=512   guest RAM (MiB), vCPUs, zram swap (0 = none)
#   VM_ACCEL=auto|tcg|kvm                 auto = kvm only with kvm_intel/kvm_amd and a boot probe
#   VM_KFLAVOR=cloud-amd64                Debian kernel flavour (linux-image-$VM_KFLAVOR)
#   VM_CACHE=/var/cache/corral-vm         kernel cache
#   VM_HOST_TOOLS="free ps top vmstat uptime nproc unshare runc newuidmap newgidmap podman conmon"   host programs copied in with their
#                    shared libraries, so `corral run -- free` on the default root works
#                    (podman, conmon: rootless podman with --runtime corral, TestPodmanRootless)
#   VM_HOST_FILES="/usr/share/containers/seccomp.json /lib/terminfo/d/dumb"   host data files
#                    copied to the same path when they exist (tests that read host config;
#                    procps `top -b` exits 1 without the "dumb" terminfo entry)
#   VM_PROPAGATION=shared|private        propagation of / (shared = like systemd hosts)
#   VM_KEEP=DIR                           keep the work dir (initramfs, console.log) in DIR
# exit: 0 all passed; 1 a build or test failed or timed out; 2 the VM did not boot / finish.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VM_PKGS=${VM_PKGS:-./cgroupreader/... ./fusefs/... ./runtime/... ./tests/...}
VM_TEST_ARGS=${VM_TEST_ARGS:-}
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-8m}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_MEM=${VM_MEM:-1536}
VM_SMP=${VM_SMP:-2}
VM_SWAP_MB=${VM_SWAP_MB:-512}
VM_ACCEL=${VM_ACCEL:-auto}
VM_KFLAVOR=${VM_KFLAVOR:-cloud-amd64}
VM_CACHE=${VM_CACHE:-/var/cache/corral-vm}
VM_HOST_TOOLS=${VM_HOST_TOOLS-free ps top vmstat uptime nproc unshare runc newuidmap newgidmap podman conmon}
VM_PROPAGATION=${VM_PROPAGATION:-shared}
VM_HOST_FILES=${VM_HOST_FILES-/usr/share/containers/seccomp.json /lib/terminfo/d/dumb}
GO=${GO:-go}
export CGO_ENABLED=0
# Modules the guest insmods, in dependency order (zram needs zsmalloc and
# its default compressor lzo-rle; fuse and overlay have no dependencies).
MODULES="crypto/lzo-rle.ko mm/zsmalloc.ko drivers/block/zram/zram.ko fs/fuse/fuse.ko fs/overlayfs/overlay.ko"

log() { echo "vm: $*"; }
die() { echo "vm: $*" >&2; exit 2; }

dur_secs() {  # a Go duration ("4m", "90s", "1m30s") in whole seconds
  echo "$1" | awk '{ s = 0; t = $0
    while (match(t, /^[0-9.]+(ms|h|m|s)/)) {
      u = substr(t, 1, RLENGTH); t = substr(t, RLENGTH + 1); n = u + 0
      if (u ~ /ms$/) s += n / 1000; else if (u ~ /h$/) s += n * 3600; else if (u ~ /m$/) s += n * 60; else s += n
    }
    if (t != "") { print "bad duration: " $0 > "/dev/stderr"; exit 1 }
    print int(s) }'
}
# The guest's hard kill comes 30 s after -test.timeout (which dumps goroutines).
test_secs=$(dur_secs "$VM_TEST_TIMEOUT") || die "VM_TEST_TIMEOUT=$VM_TEST_TIMEOUT is not a Go duration"
hard=$((test_secs + 30))

for c in qemu-system-x86_64 cpio file; do
  command -v "$c" >/dev/null || die "needs $c: run 'make test-deps' (apt-get install qemu-system-x86 cpio file)"
done
[ "$(id -u)" = 0 ] || die "needs root (the kernel cache lives in $VM_CACHE)"

is_static() { file -L "$1" | grep -Eq 'statically linked|static-pie linked'; }

t_total0=$(date +%s.%N)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/corral-vm.XXXXXX")
cleanup() {
  if [ -n "${VM_KEEP:-}" ]; then mkdir -p "$VM_KEEP" && cp -a "$WORK"/. "$VM_KEEP"/ && log "kept work dir in $VM_KEEP"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 1. kernel: the Debian cloud kernel, fetched once with apt-get download ----
fetch_kernel() {
  local dir=$1 stamp=$2 kpkg x
  kpkg=$(apt-cache depends "linux-image-$VM_KFLAVOR" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$kpkg" ] || die "cannot resolve linux-image-$VM_KFLAVOR (run apt-get update)"
  log "fetching $kpkg into $VM_CACHE"
  x=$(mktemp -d "$VM_CACHE/tests-vm/extract.XXXXXX")
  ( cd "$x" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null ) || { rm -rf "$x"; die "apt-get download $kpkg failed"; }
  dpkg -x "$x"/"$kpkg"_*.deb "$x/root"
  rm -rf "$dir" && mkdir -p "$dir/modules"
  mv "$x"/root/boot/vmlinuz-* "$dir/"
  # Keep only what the guest loads (a few MB instead of the ~100 MB tree).
  for m in $MODULES; do
    cp "$x"/root/lib/modules/*/kernel/"$m" "$dir/modules/" || { rm -rf "$x"; die "module $m missing in $kpkg"; }
  done
  rm -rf "$x"
  echo "$stamp" > "$dir/.stamp"
}
mkdir -p "$VM_CACHE/tests-vm"
# Own subdirectory: /work/shared/tools/cgroup-v2-vm.sh uses $VM_CACHE/$VM_KFLAVOR
# with another layout, and the two must not rebuild each other's cache.
KDIR="$VM_CACHE/tests-vm/$VM_KFLAVOR"
STAMP="modules=$MODULES"
(
  flock 9  # parallel runs share the cache
  [ "$(cat "$KDIR/.stamp" 2>/dev/null)" = "$STAMP" ] || fetch_kernel "$KDIR" "$STAMP"
) 9>"$VM_CACHE/tests-vm/.lock"
VMLINUZ=$(ls "$KDIR"/vmlinuz-* | head -1)

# ---- 2. build: corral binaries and one static test binary per package ----
# The guest has a merged /usr like Debian: /bin -> usr/bin, /lib -> usr/lib.
# Host tools and their libraries go to their host paths; busybox fills in
# every other command at boot (--install -s leaves existing files alone).
R="$WORK/root"
mkdir -p "$R"/usr/{bin,sbin,lib/modules,lib64} "$R"/{corral/bin,t,etc,root,proc,sys,dev,tmp}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
failures=()   # "name: reason" for the summary
cd "$REPO"

log "make build"
t_make0=$(date +%s.%N)
if make -s build >"$WORK/build.log" 2>&1; then
  for b in bin/*; do [ -f "$b" ] && [ -x "$b" ] && cp "$b" "$R/corral/bin/"; done
else
  cat "$WORK/build.log"
  failures+=("make build: failed (tests that need bin/corral* will fail too)")
fi
awk -v a="$t_make0" -v b="$(date +%s.%N)" 'BEGIN{printf "vm: make build took %.1fs\n", b-a}'

[ $# -gt 0 ] && VM_PKGS="$*"
# Resolve patterns to packages that have tests; a pattern matching nothing
# yet (a package not written yet) is skipped, not an error.
pkgs=()
for pat in $VM_PKGS; do
  while read -r ip ntest nxtest; do
    [ -n "$ip" ] || continue
    if [ $((ntest + nxtest)) -gt 0 ]; then pkgs+=("$ip"); else log "skip $ip (no tests)"; fi
  done < <($GO list -e -f '{{.ImportPath}} {{len .TestGoFiles}} {{len .XTestGoFiles}}' "$pat" 2>/dev/null | grep -v '^_' || true)
done
[ ${#pkgs[@]} -gt 0 ] || die "no test packages in: $VM_PKGS"

: > "$R/t/RUNLIST"
names=()
t_build0=$(date +%s.%N)
# Compiles share the build cache; running a few `go test -c` at once
# overlaps their (single-threaded) link steps.
jobs_max=${VM_BUILD_JOBS:-$(( $(nproc) + 1 ))}
pkgname() { local n=${1#github.com/corral-dev/corral/}; echo "${n//\//_}"; }
for ip in "${pkgs[@]}"; do
  name=$(pkgname "$ip")
  ( $GO test -c -o "$R/t/$name.test" "$ip" >"$WORK/build-$name.log" 2>&1; echo $? > "$WORK/build-$name.rc" ) &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
done
wait
for ip in "${pkgs[@]}"; do
  name=$(pkgname "$ip")
  if [ "$(cat "$WORK/build-$name.rc")" != 0 ] || [ ! -f "$R/t/$name.test" ]; then
    cat "$WORK/build-$name.log"
    failures+=("$name: test binary did not build")
    continue
  fi
  is_static "$R/t/$name.test" || { failures+=("$name: test binary is not static"); rm -f "$R/t/$name.test"; continue; }
  echo "$name $name.test" >> "$R/t/RUNLIST"
  names+=("$name")
done
t_build1=$(date +%s.%N)

BUSYBOX=${CORRAL_BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] && is_static "$BUSYBOX" || die "$BUSYBOX is not a static busybox: apt-get install busybox-static"
cp "$BUSYBOX" "$R/bin/busybox"
copy_with_libs() {  # $1 = host program: copy it and every library ldd names
  local lib
  # Never through a busybox applet link of the same name (cp would
  # overwrite busybox itself): util-linux's unshare has -C, busybox's not.
  rm -f "$R/usr/bin/$(basename "$1")"
  cp -L "$1" "$R/usr/bin/"
  # setuid helpers (newuidmap) stay setuid: cp drops the bit.
  if [ -u "$1" ]; then chmod u+s "$R/usr/bin/$(basename "$1")"; fi
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$R$lib" ] && continue
    mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
  done
}
for tool in $VM_HOST_TOOLS; do
  p=$(command -v "$tool" || true)
  case "$p" in /*) copy_with_libs "$p" ;; *) log "host tool $tool not found: not in the VM" ;; esac
done
for f in $VM_HOST_FILES; do
  if [ -f "$f" ]; then mkdir -p "$R$(dirname "$f")" && cp -L "$f" "$R$f"; else log "host file $f not found: not in the VM"; fi
done
for m in $MODULES; do cp "$KDIR/modules/$(basename "$m")" "$R/lib/modules/"; done
cp "$HERE/init.sh" "$R/init" && chmod 0755 "$R/init"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
cat > "$R/t/env" <<EOF
VMTEST_ARGS='$VM_TEST_ARGS'
VM_TEST_TIMEOUT='$VM_TEST_TIMEOUT'
VM_HARD_TIMEOUT='$hard'
VM_SWAP_MB='$VM_SWAP_MB'
VM_PROPAGATION='$VM_PROPAGATION'
EOF
# Uncompressed: decompressing in the guest under TCG costs more than qemu copying it.
( cd "$R" && find . -print0 | cpio --null -o -H newc --quiet ) > "$WORK/initrd.cpio"
awk -v a="$t_build0" -v b="$t_build1" -v n=${#names[@]} 'BEGIN{printf "vm: built %d test binaries in %.1fs\n", n, b-a}'

if [ ${#names[@]} -eq 0 ]; then
  log "nothing to run"; for f in "${failures[@]}"; do log "FAIL $f"; done; exit 1
fi

# ---- 3. boot ----
ACC=tcg
if [ "$VM_ACCEL" = kvm ]; then ACC=kvm
elif [ "$VM_ACCEL" = auto ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
  # A /dev/kvm backed by kvm_pvm (nested, no VMX/SVM) hangs a stock kernel:
  # only real VMX/SVM KVM is probed, and only trusted if it prints a banner.
  if timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 128 -nographic -nodefaults -no-reboot \
       -kernel "$VMLINUZ" -append "console=ttyS0 panic=-1" -serial stdio -monitor none 2>&1 | grep -qm1 'Linux version'; then
    ACC=kvm
  fi
fi
if [ "$ACC" = kvm ]; then accel=(-accel kvm -cpu host); else accel=(-accel tcg,thread=multi -cpu max); fi
log "booting $(basename "$VMLINUZ") accel=$ACC mem=${VM_MEM}M smp=$VM_SMP initrd=$(( $(stat -c %s "$WORK/initrd.cpio") / 1048576 ))MiB binaries: ${names[*]}"
t_boot0=$(date +%s.%N)
set +e
# The console streams live (debuggable CI logs), without the serial line's
# \r and SeaBIOS's terminal escapes (which would hide a marker at line start).
timeout --foreground -k 5 "$VM_TIMEOUT" qemu-system-x86_64 "${accel[@]}" -smp "$VM_SMP" -m "$VM_MEM" \
  -nographic -no-reboot -nodefaults -serial stdio -monitor none \
  -kernel "$VMLINUZ" -initrd "$WORK/initrd.cpio" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic" 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' | tee "$WORK/console.log"
qrc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s.%N)

# ---- 4. results from the console markers ----
# Markers are searched anywhere in a line: kernel messages or a test's
# unterminated last line can share the line with them.
C="$WORK/console.log"
M="$WORK/markers"
grep -ao '@@VMTEST .*' "$C" > "$M" || true
booted=$(awk '/^@@VMTEST BOOTED/{sub(/.*uptime=/,""); sub(/s.*/,""); print; exit}' "$M")
echo
log "---- results (qemu exit $qrc) ----"
if [ -z "$booted" ]; then
  failures+=("VM: never booted (no @@VMTEST BOOTED marker)")
else
  grep '^@@VMTEST \(FATAL\|WARN\)' "$M" | sed 's/^@@VMTEST /vm: /' || true
  passed=0
  for name in "${names[@]}"; do
    end=$(grep -m1 "^@@VMTEST END $name " "$M" || true)
    if [ -z "$end" ]; then
      if grep -q "^@@VMTEST BEGIN $name\$" "$M"; then failures+=("$name: did not finish (VM timeout/crash)")
      else failures+=("$name: never ran"); fi
      continue
    fi
    rc=$(echo "$end" | sed 's/.* rc=\([0-9]*\).*/\1/'); secs=${end##*secs=}
    # The failed tests with their whole output (what they logged, the
    # daemon output their cleanups log), and on a panic (test timeout)
    # the running test's output and the dump: CI shows nothing else of
    # the guest. From its -test.v output; each block capped.
    [ "$rc" = 0 ] || sed -n "/@@VMTEST BEGIN $name\$/,/@@VMTEST END $name /p" "$C" | awk -f "$HERE/failed_output.awk" |
      sed "s/^/vm:   $name: /" || true
    if [ "$rc" = 0 ]; then passed=$((passed + 1)); log "ok   $name (${secs}s)"
    elif [ "$rc" = 137 ]; then failures+=("$name: killed after the hard timeout (${secs}s)")
    else failures+=("$name: exit $rc (${secs}s)"); fi
  done
  grep -q '^@@VMTEST DONE' "$M" || failures+=("VM: no DONE marker (timeout after ${VM_TIMEOUT}s or kernel panic)")
fi
for f in "${failures[@]}"; do log "FAIL $f"; done
awk -v a="$t_total0" -v b="$t_boot0" -v e="$t_end" -v bt="${booted:-?}" \
  'BEGIN{printf "vm: timing: build+initrd %.1fs, guest boot %ss (guest uptime), qemu wall %.1fs, total %.1fs\n", b-a, bt, e-b, e-a}'
log "${passed:-0} passed, ${#failures[@]} failed"
[ -n "$booted" ] || exit 2
[ ${#failures[@]} -eq 0 ] || exit 1
exit 0
