#!/bin/busybox sh
# /init of the cgroup v2 test VM (copied into the initramfs by run.sh).
#
# Stage 1 copies the initramfs into a tmpfs and switch_roots into it:
# pivot_root (which the runtime under test uses) fails on the initramfs
# "rootfs". Stage 2 sets up what a systemd host would have (cgroup2 with
# controllers, /dev/pts, /dev/shm, fuse, overlay, swap, lo), then runs every
# test binary listed in /t/RUNLIST and powers off.
#
# The host reads the results from markers on the serial console (qemu exits
# 0 whatever happens in here):
#   @@VMTEST BOOTED uptime=S
#   @@VMTEST BEGIN <name>
#   @@VMTEST END <name> rc=<exit code> secs=<wall seconds>
#   @@VMTEST DONE uptime=S
/bin/busybox --install -s /bin
export PATH=/corral/bin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

if [ "$1" != stage2 ]; then
  mkdir -p /newroot
  mount -t tmpfs -o size=90%,mode=0755 tmpfs /newroot
  for d in /*; do
    case "$d" in /proc|/sys|/dev|/newroot) continue ;; esac
    cp -a "$d" /newroot/
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev
  umount /proc /sys /dev
  # switch_root deletes the initramfs contents, so the binaries are not held twice.
  exec switch_root /newroot /init stage2
  echo "@@VMTEST FATAL switch_root failed"; poweroff -f
fi

# VMTEST_ARGS, VM_TEST_TIMEOUT, VM_HARD_TIMEOUT, VM_SWAP_MB, VM_PROPAGATION from the host.
. /t/env

fail_setup() { echo "@@VMTEST FATAL $*"; sync; poweroff -f; }

mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts || fail_setup "devpts"
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

mkdir -p /sys/fs/cgroup
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || fail_setup "cgroup2 mount"
# "No internal processes": the runner moves into a leaf before the root
# hands controllers to its children (as systemd puts itself in init.scope).
mkdir -p /sys/fs/cgroup/init.scope
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs || fail_setup "init.scope"
for c in cpu cpuset memory pids io; do
  grep -qw $c /sys/fs/cgroup/cgroup.controllers && echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
done

# Modules in dependency order (no modules.dep in here, so no modprobe).
for m in lzo-rle zsmalloc zram fuse overlay; do
  [ -e /lib/modules/$m.ko ] && { insmod /lib/modules/$m.ko || echo "@@VMTEST WARN insmod $m failed"; }
done
[ -c /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229

# Swap on zram, so swap accounting and /proc/swaps views have something real.
if [ -n "$VM_SWAP_MB" ] && [ "$VM_SWAP_MB" != 0 ] && [ -e /sys/block/zram0/disksize ]; then
  if echo "${VM_SWAP_MB}M" > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
    export CORRAL_VM_SWAP=1   # tests may count on swap
  else
    echo "@@VMTEST WARN zram swap setup failed"
  fi
fi

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname corral-vm
# systemd hosts (what users run) make every mount shared; the dev host is
# private. Shared here means the VM covers the case where a runtime that
# forgets to make its mounts private leaks them or fails pivot_root.
mount --make-r"${VM_PROPAGATION:-shared}" /

echo "@@VMTEST BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)s kernel=$(uname -r) swap=$(awk 'NR>1{s+=$3}END{print s+0}' /proc/swaps)kB"

export CI=true CORRAL_IN_VM=1 CORRAL_BIN_DIR=/corral/bin CORRAL_BUSYBOX=/bin/busybox TMPDIR=/tmp
# RUNLIST lines: NAME BINARY (paths relative to /t).
while read -r name bin; do
  [ -n "$name" ] || continue
  echo "@@VMTEST BEGIN $name"
  start=$(cut -d' ' -f1 /proc/uptime)
  mkdir -p /t/work/$name
  # The hard timeout is a backstop: -test.timeout makes the binary dump its
  # goroutines and exit first.
  ( cd /t/work/$name && timeout -s KILL "$VM_HARD_TIMEOUT" /t/$bin -test.v -test.count=1 \
      -test.timeout="$VM_TEST_TIMEOUT" $VMTEST_ARGS </dev/null 2>&1 )
  rc=$?
  end=$(cut -d' ' -f1 /proc/uptime)
  echo "@@VMTEST END $name rc=$rc secs=$(awk -v s="$start" -v e="$end" 'BEGIN{printf "%.1f", e-s}')"
  # A test that leaked cgroups or mounts would poison the next binary: say so.
  if [ -d /sys/fs/cgroup/corral-test ] && [ -n "$(ls -d /sys/fs/cgroup/corral-test/*/ 2>/dev/null)" ]; then
    echo "@@VMTEST WARN $name left cgroups: $(cd /sys/fs/cgroup/corral-test && ls -d */ | tr '\n' ' ')"
  fi
done < /t/RUNLIST

echo "@@VMTEST DONE uptime=$(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
