#!/usr/bin/env bash
# bench/transport.sh: exits per virtio-blk request with MSI-X and with INTx,
# measured in the nested test bed (QEMU TCG + emulated AMD-V, docs/kvm.md).
# The numbers that chose the transport in docs/devices.md. Not a timing test:
# TCG makes absolute speeds meaningless; the exit counts are exact.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/nested-run.sh bench/transport.inc 1500 | sed -n 's/^@@BENCH //p' | tee "$tmp/out"
mkdir -p bench/out
cp "$tmp/out" bench/out/transport.txt
