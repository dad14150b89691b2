#!/usr/bin/env bash
# Boot benchmark (issue 2): the same kernel and initramfs — Debian's cloud
# kernel and the default guest, whose /init ends the VM at once — booted by
# ring3 (kvm engine) and by `qemu-system-x86_64 -M microvm` (KVM), interleaved,
# RUNS times each (default 10). Here, without VT-x/AMD-V, both run inside the
# nested test bed (docs/kvm.md). Prints medians of the time to the guest's
# readiness line and to exit, and peak RSS; the last line is
#   boot ring3/qemu-microvm time-to-init median ratio R
# Results also go to bench/out/boot-DATE.txt. Never part of `make check`.
# The outer VM's shmem_enabled is "advise" (NESTED_SHMEM_THP=never to compare):
# then both VMMs' memfd guest RAM gets huge pages (bench/boot.inc).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
[ "$runs" -ge 1 ] || { echo "RUNS must be at least 1" >&2; exit 2; }
for f in "${RING3_BIN:-ring3}" build/guest-linux/vmlinuz-amd64 build/guest-linux/initrd-amd64.img; do
	[ -e "$f" ] || { echo "boot.sh: missing $f (make all guest-linux)" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -static -O2 -Wall -Wextra -Werror -o "$tmp/boottime" bench/boottime.c
{ echo "runs=$runs"; cat bench/boot.inc; } > "$tmp/payload.sh"

mkdir -p bench/out
out=bench/out/boot-$(date +%Y%m%d-%H%M%S).txt
echo "# boot benchmark: $runs runs each, interleaved, in the nested test bed" >&2
# 20-60 s per pair of boots (more on a loaded machine), plus the outer boot
NESTED_QEMU=1 scripts/nested-run.sh "$tmp/payload.sh" $((120 + runs * 80)) \
	"$tmp/boottime:/bin/boottime" > "$tmp/console.txt" || true
grep '^@@BENCH' "$tmp/console.txt" | sed 's/^@@BENCH //' > "$tmp/results.txt" || true
if grep -q '^skip' "$tmp/results.txt" || [ ! -s "$tmp/results.txt" ]; then
	echo "boot.sh: no results from the nested test bed:" >&2
	grep -E '^@@|rror' "$tmp/console.txt" | tail -10 >&2
	exit 1
fi

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { # field VMM NAME: that field of every successful run, one per line
	awk -v vmm="$1" -v name="$2" '$1 == vmm {
		ok = 0; val = ""
		for (i = 3; i <= NF; i++) {
			split($i, kv, "=")
			if (kv[1] == "status" && (kv[2] == 0 || (vmm == "qemu" && kv[2] == 1))) ok = 1
			if (kv[1] == name) val = kv[2]
		}
		if (ok && val != "" && val >= 0) print val
	}' "$tmp/results.txt"
}
{
	echo "# boot benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n)"
	echo "# host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
	echo "# outer VM: THP $(sed -n 's/^# enabled: //p' "$tmp/results.txt"), shmem THP $(sed -n 's/^# shmem_enabled: //p' "$tmp/results.txt")"
	echo "# guest: $(basename "$(readlink -f build/guest-linux/vmlinuz-amd64)") $(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1 | sed 's|/boot/vmlinuz-||'), 256 MiB, 1 vCPU, inside QEMU TCG -cpu qemu64,+svm,+rdrand"
	echo "# raw results (QEMU's status 1 is debug-exit's (0 << 1) | 1):"
	sed 's/^/#   /' "$tmp/results.txt"
	echo "# medians; guest = guest RAM touched (its memfd's resident pages),"
	echo "# overhead = peak RSS - guest: the VMM's own memory"
	printf '%-8s %5s %10s %10s %13s %10s %13s\n' vmm runs "ready ms" "exit ms" \
		"peak RSS kB" "guest kB" "overhead kB"
	for vmm in ring3 qemu; do
		n=$(field $vmm ready_ms | wc -l)
		printf '%-8s %5s %10s %10s %13s %10s %13s\n' "$vmm" "$n" \
			"$(field $vmm ready_ms | median)" "$(field $vmm exit_ms | median)" \
			"$(field $vmm hwm_kb | median)" "$(field $vmm guest_kb | median)" \
			"$(field $vmm over_kb | median)"
	done
	r=$(field ring3 ready_ms | median)
	q=$(field qemu ready_ms | median)
	re=$(field ring3 exit_ms | median)
	qe=$(field qemu exit_ms | median)
	echo "boot ring3/qemu-microvm time-to-exit median ratio $(awk -v a="$re" -v b="$qe" 'BEGIN { printf "%.2f", a / b }')"
	echo "boot ring3/qemu-microvm time-to-init median ratio $(awk -v a="$r" -v b="$q" 'BEGIN { printf "%.2f", a / b }')"
} | tee "$out"
