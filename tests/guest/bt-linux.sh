#!/usr/bin/env bash
# Debian's unmodified i386 kernel and the busybox initramfs (make setup) under
# the bt engine: `-- COMMAND` runs in the guest and ring3 exits with its
# status. Checks the machine name, exit statuses, 2,000 fork/execs, pipes,
# signals, a checksum of 64 MiB in tmpfs, and that the boot log has no oops or
# BUG. bt-dmesg.sh compares the warnings with QEMU's; bt-virtio.sh the devices.
set -u
cd "$(dirname "$0")/../.."
. tests/guest/i386-guest.inc

run() { run_bt -- "$@"; } # command...

start=$(date +%s.%N)
run sh -c 'uname -m; cat /proc/cpuinfo; echo @@dmesg; dmesg'
secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
result "$([ "$rc" = 0 ] && grep -qx i686 "$tmp/cmd"; echo $?)" \
	"uname -m prints i686 (boot and command in $secs s)"
# the whole kernel log: `quiet` keeps warnings (level 4) off the console
sed -n '/^@@dmesg$/,$p' "$tmp/cmd" >"$tmp/dmesg"
result "$([ "$(wc -l <"$tmp/dmesg")" -gt 100 ] &&
	! grep -aE 'Oops|BUG:|Kernel panic|WARNING|Call Trace|general protection|unchecked MSR' \
	"$tmp/dmesg" >/dev/null; echo $?)" \
	"dmesg ($(wc -l <"$tmp/dmesg") lines) has no oops, BUG, panic, WARNING, call trace or MSR error"

# The virtual CPUID as Linux reads it: the host's vendor and model name, and
# only features the engine virtualizes (no PAE, APIC, SEP, SYSCALL, long mode,
# NX, VMX/SVM, XSAVE/AVX, 1 GiB pages...; docs/bt.md, cpuid.c).
cpu() { sed -n "s/^$1[[:space:]]*: //p" "$2" | head -1; }
flags=" $(cpu flags "$tmp/cmd") "
bad="" missing=""
for f in pae apic sep mtrr pat pse36 mca mce vmx svm lm nx syscall pdpe1gb rdtscp xsave avx \
	fxsr_opt x2apic pcid; do
	[[ $flags == *" $f "* ]] && bad="$bad $f"
done
for f in fpu pse tsc pge cmov fxsr sse sse2 hypervisor; do
	[[ $flags == *" $f "* ]] || missing="$missing $f"
done
result "$([ "$(cpu vendor_id "$tmp/cmd")" = "$(cpu vendor_id /proc/cpuinfo)" ] &&
	[ "$(cpu 'model name' "$tmp/cmd")" = "$(cpu 'model name' /proc/cpuinfo)" ] &&
	[ -z "$bad$missing" ]; echo $?)" \
	"/proc/cpuinfo: the host's vendor and model, no feature bt cannot give${bad:+ (has:$bad)}${missing:+ (lacks:$missing)}"

run sh -c 'exit 7'
result "$([ "$rc" = 7 ]; echo $?)" "sh -c 'exit 7' exits 7 (got $rc)"

# Without --engine, a host without VT-x/AMD-V picks bt and the i386 guest.
if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	RING3_VERBOSE=1 timeout 120 ./ring3 run -- uname -m </dev/null >"$tmp/out" 2>"$tmp/log"
	rc=$?
	result "$([ "$rc" = 0 ] && grep -q '^ring3: engine bt' "$tmp/log" && tr -d '\r' <"$tmp/out" |
		sed -n '/^ring3-guest: ready$/,$p' | grep -qx i686; echo $?)" \
		"--engine auto here: bt and the i386 guest (uname -m prints i686)"
fi

# A fork/exec stress: 2,000 short processes, each a fork and an exec (and an
# address space built and torn down) in the guest.
run sh -c 'i=0; while [ $i -lt 2000 ]; do /bin/true || exit 1; i=$((i + 1)); done; echo forked $i'
result "$([ "$rc" = 0 ] && grep -qx 'forked 2000' "$tmp/cmd"; echo $?)" "2,000 fork/exec of /bin/true"

# Pipes: a pipeline of three processes, and 16 MiB through a named pipe
# between two.
run sh -c 'echo hello world | tr a-z A-Z | cat; mkfifo /tmp/p
	(dd if=/dev/zero bs=65536 count=256 2>/dev/null >/tmp/p) & wc -c </tmp/p; wait; echo dd=$?'
result "$([ "$rc" = 0 ] && grep -qx 'HELLO WORLD' "$tmp/cmd"; echo $?)" "a pipeline of three processes"
result "$(grep -qx 16777216 "$tmp/cmd" && grep -qx dd=0 "$tmp/cmd"; echo $?)" \
	"16 MiB through a named pipe from one process to another"

# Signals: a handler in the shell, a signal to another process, a real
# SIGSEGV (a child's stack overflows into its guard page: the guest kernel's
# page-fault path) reported as 128 + 11, and SIGALRM from timeout(1).
run sh -c 'trap "echo got USR1" USR1; kill -USR1 $$; echo after-usr1
	sleep 30 & kill -USR2 $!; wait $!; echo usr2=$?
	sh -c "ulimit -s 128; f() { f; }; f"; echo segv=$?
	timeout -s ALRM 1 sleep 10; echo alrm=$?'
result "$(grep -qx 'got USR1' "$tmp/cmd" && grep -qx after-usr1 "$tmp/cmd"; echo $?)" \
	"a trap handler in sh runs on kill -USR1 \$\$, and the shell goes on"
result "$(grep -qx usr2=140 "$tmp/cmd"; echo $?)" "kill -USR2 ends a sleeping child: status 140"
result "$(grep -qx segv=139 "$tmp/cmd"; echo $?)" "a child whose stack overflows dies of SIGSEGV: status 139"
result "$(grep -qx alrm=142 "$tmp/cmd"; echo $?)" "timeout -s ALRM 1 sleep 10 ends by SIGALRM: status 142"

# 64 MiB in tmpfs, made the same way on both sides (seq is deterministic),
# checksummed in the guest.
want=$(seq 1 9000000 | head -c 67108864 | sha256sum | cut -d' ' -f1)
run sh -c 'seq 1 9000000 >/tmp/f && truncate -s 67108864 /tmp/f && sha256sum /tmp/f'
result "$([ "$rc" = 0 ] && grep -q "^$want " "$tmp/cmd"; echo $?)" \
	"sha256sum of a 64 MiB file in tmpfs computed in the guest matches the host's"

echo "1..$n"
[ "$fails" = 0 ]
