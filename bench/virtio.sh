#!/usr/bin/env bash
# bench/virtio.sh blk|net [ROUNDS]: the in-guest workload of bench/blk.sh or
# bench/net.sh under ring3 and under QEMU, interleaved, in the nested test bed
# (this host has no VT-x/AMD-V: docs/kvm.md). Prints medians, the ratios
# ring3/QEMU, ring3's exits per request (blk) and, last, the geometric mean.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1 rounds=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in blkbench netbench; do
	[ -x build/guest/$t-amd64 ] || { echo "bench: build/guest/$t-amd64 is not built (make)" >&2; exit 1; }
done
scripts/mkinitramfs.sh amd64 "$tmp/g" build/guest/blkbench-amd64:/bin/blkbench \
	build/guest/netbench-amd64:/bin/netbench >/dev/null
echo "$mode" > "$tmp/mode"
echo "$rounds" > "$tmp/rounds"
extra=("$tmp/g/vmlinuz-amd64:/guest-bench/vmlinuz-amd64" "$tmp/g/initrd-amd64.img:/guest-bench/initrd-amd64.img"
	"$tmp/mode:/bench/mode" "$tmp/rounds:/bench/rounds" build/guest/netbench-amd64:/usr/local/bin/netbench)
mkdir -p bench/out
# QEMU in the outer VM (NESTED_QEMU=1); the raw console goes to bench/out as
# it comes, so a run cut short still shows where it was
NESTED_QEMU=1 NESTED_MEM=3072 NESTED_CONSOLE="bench/out/$mode-console.raw" \
	scripts/nested-run.sh bench/virtio.inc 3000 "${extra[@]}" > "bench/out/$mode-console.txt" || true
sed -n 's/^@@BENCH //p' "bench/out/$mode-console.txt" > "bench/out/$mode.txt"
python3 - "$mode" "bench/out/$mode.txt" <<'PY'
import math, statistics, sys
mode, path = sys.argv[1], sys.argv[2]
vals = {}
exits = []
txreq = []
for line in open(path):
    w = line.split()
    if len(w) >= 3 and w[1] == "exits":
        exits.append((int(w[2]), int(w[4])))
        continue
    if len(w) == 5 and w[1] == "tx_requests":
        txreq.append((int(w[2]), int(w[4])))
        continue
    if len(w) == 3:
        try:
            vals.setdefault((w[0], w[1]), []).append(float(w[2]))
        except ValueError:
            pass
ratios = []
expected = {"blk": {"seqwrite_MBps", "seqread_MBps", "randread4k_IOPS"}, "net": {"tx_MBps", "rx_MBps"}}[mode]
missing = False
for metric in sorted(expected | {m for _, m in vals}):
    r3, q = vals.get(("ring3", metric), []), vals.get(("qemu", metric), [])
    if not r3 or not q:
        print(f"{metric}: missing (ring3 {r3}, qemu {q})")
        missing = True
        continue
    a, b = statistics.median(r3), statistics.median(q)
    ratios.append(a / b if b else 0)
    print(f"{metric}: ring3 {a:.1f}  qemu {b:.1f}  ratio {ratios[-1]:.2f}  (runs {len(r3)}/{len(q)})")
if exits:
    e, r = sum(x for x, _ in exits), sum(y for _, y in exits)
    print(f"ring3 exits per request: {e / r:.3f} ({e} exits, {r} requests)" if r else "no requests")
if txreq:
    q, b = sum(x for x, _ in txreq), sum(y for _, y in txreq)
    print(f"ring3 guest->host runs: {q} virtio-net requests (both queues) for {b / 2**20:.0f} MiB sent, {q / (b / 2**20):.0f} per MiB" if b else "no bytes")
# a mean over only the metrics that happened to complete would not be the ratio the issue asks for
if missing or not ratios or not all(ratios):
    print(f"{mode} ring3/qemu throughput ratio n/a")
else:
    g = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    print(f"{mode} ring3/qemu throughput ratio {g:.2f}")
PY
