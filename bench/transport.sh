#!/usr/bin/env bash
# bench/transport.sh: exits per virtio-blk request with MSI-X and with INTx,
# measured in the nested test bed (QEMU TCG + emulated AMD-V, docs/kvm.md).
# The numbers that chose the transport in docs/devices.md. Not a timing test:
# TCG makes absolute speeds meaningless; the exit counts are exact.
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/nested-initramfs.sh "$tmp/outer.cpio.gz" bench/transport.inc >/dev/null
timeout 1500 qemu-system-x86_64 -accel tcg,thread=multi -cpu qemu64,+svm,+rdrand -m 2048 -smp 2 \
	-nographic -no-reboot -nodefaults -serial stdio -kernel "$kernel" \
	-initrd "$tmp/outer.cpio.gz" -append "console=ttyS0 quiet panic=-1 mitigations=off" \
	</dev/null | tr -d '\r' | sed -n 's/^@@BENCH //p' | tee "$tmp/out"
mkdir -p bench/out
cp "$tmp/out" bench/out/transport.txt
