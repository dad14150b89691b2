#!/usr/bin/env bash
# nested-run.sh PAYLOAD TIMEOUT_SECONDS [SRC:DEST ...]
# Boots the nested test bed (docs/kvm.md): builds the outer initramfs with
# PAYLOAD (scripts/nested-initramfs.sh), boots Debian's cloud kernel in QEMU
# TCG with emulated AMD-V, and prints the outer serial console, CRs removed,
# on stdout. Exits with QEMU's status (124 on the timeout, 125 when the outer
# VM went silent in every boot). Only the QEMU this script started is ever killed, and
# its files are removed. NESTED_QEMU=1 also puts QEMU into the outer VM (for
# the benchmarks), NESTED_MEM sets the outer VM's MiB (2048), and
# NESTED_CONSOLE=FILE keeps the raw console in FILE as it comes.
#
# The outer VM's userspace prints "@@NESTED alive" every 20 s, and its kernel
# "@@NESTED kernel alive". Before the outer VM stopped running
# khugepaged (about one nested run in three, docs/kvm.md) its console could
# stop for good in the middle of a payload. So after NESTED_SILENCE seconds
# (120) without a line from userspace, QEMU is killed, the fact is printed as
# "@@NESTED silent ..." (saying whether the kernel's heartbeat went on, i.e.
# a stalled tty rather than a wedged VM), and the payload runs once more from
# the start, up to NESTED_TRIES boots (4). The last stall ends the run with
# status 125. tests/nested/bed.inc prints each stall as a diagnostic line.
set -uo pipefail
cd "$(dirname "$0")/.."
payload=$1 limit=$2
shift 2
silence=${NESTED_SILENCE:-120}
console=${NESTED_CONSOLE:-}

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
if [ -z "$kernel" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	echo "nested-run: needs /boot/vmlinuz-*-cloud-amd64 and qemu-system-x86_64" >&2
	exit 2
fi
tmp=$(mktemp -d)
console=${console:-$tmp/console.log}
qpid=""
cleanup() {
	if [ -n "$qpid" ]; then
		kill "$qpid" 2>/dev/null
		wait "$qpid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if ! scripts/nested-initramfs.sh "$tmp/outer.cpio.gz" "$payload" "$@" >"$tmp/build.log" 2>&1; then
	echo "nested-run: building the outer initramfs failed:" >&2
	tail -5 "$tmp/build.log" >&2
	exit 2
fi

# boot_once: one boot of the outer VM, console in $console. Returns
# QEMU's status, or 125 when the console stayed silent for $silence seconds.
boot_once() {
	# Two vCPUs on two host threads: inner guests with --cpus 2 and 4 need them.
	# RDRAND, as every x86 of the last decade has: without it the outer kernel's
	# entropy pool is never ready (nothing in the outer VM makes it generate
	# jitter entropy), so ring3's virtio-rng holds the inner guest's requests
	# forever, and now and then the guest's modprobe virtio_rng with them: its
	# add_early_randomness() waits for the reading_mutex of the hwrng thread.
	timeout --kill-after=5 "$limit" \
		qemu-system-x86_64 -accel tcg,thread=multi -cpu qemu64,+svm,+rdrand \
		-m "${NESTED_MEM:-2048}" -smp 2 \
		-nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$kernel" -initrd "$tmp/outer.cpio.gz" \
		-append "console=ttyS0 quiet panic=-1 mitigations=off" \
		</dev/null >"$console" 2>&1 &
	qpid=$!
	local lines last=-1 since
	since=$(date +%s)
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 2
		lines=$(grep -vc 'NESTED kernel alive' "$console" 2>/dev/null)
		if [ "$lines" != "$last" ]; then
			last=$lines since=$(date +%s)
		elif [ $(($(date +%s) - since)) -ge "$silence" ]; then
			kill "$qpid" 2>/dev/null
			wait "$qpid" 2>/dev/null
			qpid=""
			return 125
		fi
	done
	wait "$qpid"
	local rc=$?
	qpid=""
	return "$rc"
}

tries=${NESTED_TRIES:-4}
for attempt in $(seq 1 "$tries"); do
	start=$(date +%s)
	boot_once
	rc=$?
	[ "$rc" = 125 ] || break
	# the kernel's heartbeats after the last line from userspace
	k=$(tr -d '\r' < "$console" | sed -n '/^@@NESTED alive/h; /NESTED kernel alive/H; ${x;p}' |
		grep -c 'kernel alive')
	echo "@@NESTED silent: no line from the outer VM's userspace for ${silence} s," \
		"$(($(date +%s) - start)) s into boot $attempt of $tries; the printk heartbeat went on" \
		"$k times after it ($([ "$k" -ge $((silence / 20 - 1)) ] && echo "a stalled tty" || echo "a wedged VM")); its last lines:"
	tr -d '\r' < "$console" | grep -v 'NESTED.*alive' | tail -3 | sed 's/^/@@NESTED |   /'
done
tr -d '\r' < "$console"
exit "$rc"
