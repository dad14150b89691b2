#!/usr/bin/env bash
# nested-run.sh PAYLOAD TIMEOUT_SECONDS [SRC:DEST ...]
# Boots the nested test bed (docs/kvm.md) once: builds the outer initramfs
# with PAYLOAD (scripts/nested-initramfs.sh), boots Debian's cloud kernel in
# QEMU TCG with emulated AMD-V, and prints the outer serial console, CRs
# removed, on stdout. Exits with QEMU's status (124 on the timeout). Only the
# QEMU this script started is ever killed, and its files are removed.
# NESTED_QEMU=1 also puts QEMU into the outer VM (for bench/boot.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
payload=$1 limit=$2
shift 2

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
if [ -z "$kernel" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	echo "nested-run: needs /boot/vmlinuz-*-cloud-amd64 and qemu-system-x86_64" >&2
	exit 2
fi
tmp=$(mktemp -d)
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

# Two vCPUs on two host threads: inner guests with --cpus 2 and 4 need them.
timeout --kill-after=5 "$limit" \
	qemu-system-x86_64 -accel tcg,thread=multi -cpu qemu64,+svm -m 2048 -smp 2 \
	-nographic -no-reboot -nodefaults -serial stdio \
	-kernel "$kernel" -initrd "$tmp/outer.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 mitigations=off" \
	</dev/null >"$tmp/console.log" 2>&1 &
qpid=$!
wait "$qpid"
rc=$?
qpid=""
tr -d '\r' < "$tmp/console.log"
exit "$rc"
