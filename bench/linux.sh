#!/usr/bin/env bash
# Real Linux on the bt engine (issue 5): the default i386 guest — Debian's
# linux-image-686 and the busybox initramfs, the same two files on both sides —
# booted by `ring3 run --engine bt` and by `qemu-system-i386 -accel tcg`
# (QEMU's default PC and CPU, the same RAM), interleaved, RUNS times each
# (default 5). In each boot the guest runs one script and prints a marker
# before each step; the host timestamps the console lines as they arrive (the
# guest's own clock is not trusted), so every figure is wall time seen from
# the host:
#   boot       launch to /init's readiness line
#   gzip       busybox gzip of 32 MiB in tmpfs
#   sha256     busybox sha256sum of 64 MiB in tmpfs
#   forkexec   2,000 fork/execs of /bin/true from the shell
# The data is the guest's /bin/busybox repeated (the same bytes on the host),
# and the same i386 busybox-static binary runs gzip, sha256sum and the loop
# natively on the host, in /dev/shm, between the VM runs. A run whose sums
# differ from the host's counts as failed and is left out. Then, unless
# STATS=0, one more ring3 run per step with --stats (bench/out/linux-stats-*).
# Prints a table of medians; the last line is
#   linux bt/tcg boot ratio R4 bt/native gzip ratio R5 bt/tcg forkexec ratio R6
# QEMU_CPU=qemu32,-apic gives QEMU the APIC-less PC ring3's bt engine offers
# (bt-dmesg.sh compares against that one). Results go to
# bench/out/linux-DATE.txt. Never part of `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
[ "$runs" -ge 1 ] 2>/dev/null || { echo "linux.sh: RUNS must be at least 1" >&2; exit 2; }
G=${RING3_GUEST_DIR:-build/guest-linux}
BB=build/debs/i386/bin/busybox
QEMU=qemu-system-i386
MEM=512
for f in ./ring3 "$G/vmlinuz-i386" "$G/initrd-i386.img" "$BB"; do
	[ -e "$f" ] || { echo "linux.sh: missing $f (make all guest-linux)" >&2; exit 2; }
done
command -v $QEMU >/dev/null || { echo "linux.sh: $QEMU is not installed (make setup)" >&2; exit 2; }

# tmpfs on the host too, as /tmp is in the guest.
tmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p bench/out
stamp=$(date +%Y%m%d-%H%M%S)
out=bench/out/linux-$stamp.txt
statsout=bench/out/linux-stats-$stamp.txt

# The data: 32 copies of busybox cut to 64 MiB (sha256), its first 32 MiB (gzip).
make_data() { # dir busybox
	local i=0
	while [ $i -lt 32 ]; do cat "$2"; i=$((i + 1)); done >"$1/f"
	truncate -s 67108864 "$1/f"
	head -c 33554432 "$1/f" >"$1/g"
}
make_data "$tmp" "$BB"
loop='i=0; while [ $i -lt 2000 ]; do /bin/true || exit 1; i=$((i + 1)); done'
# Natively, the loop runs busybox's true too, through a link of its own.
ln -s "$(readlink -f "$BB")" "$tmp/true"
fsum=$(sha256sum <"$tmp/f" | cut -d' ' -f1)
"$BB" gzip -c "$tmp/g" >"$tmp/g.gz"
gzsum=$(sha256sum <"$tmp/g.gz" | cut -d' ' -f1)

# The guest's script: the same steps, each after a marker line.
read -r -d '' guest <<'EOF' || true
i=0; while [ $i -lt 32 ]; do cat /bin/busybox; i=$((i + 1)); done >/tmp/f
truncate -s 67108864 /tmp/f; head -c 33554432 /tmp/f >/tmp/g
echo @@gzip; gzip -c /tmp/g >/tmp/g.gz
echo @@sha256; sha256sum /tmp/f
echo @@forkexec; i=0; while [ $i -lt 2000 ]; do /bin/true || exit 1; i=$((i + 1)); done
echo @@end; sha256sum /tmp/g.gz
EOF
b64=$(printf '%s' "$guest" | base64 -w0)

# Each console line with the host's time of arrival (seconds, microseconds).
timestamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"; done; }

# One boot: prints "boot=S gzip=S sha256=S forkexec=S status=S ok=0|1".
vm_run() { # ring3|qemu, log
	local t0 rc ok
	t0=$EPOCHREALTIME
	if [ "$1" = ring3 ]; then
		timeout 600 ./ring3 run --engine bt --mem ${MEM}M -- sh -c "$guest" \
			</dev/null 2>&1 | timestamp >"$2"
		rc=${PIPESTATUS[0]}
	else
		timeout 600 $QEMU -accel tcg -M pc ${QEMU_CPU:+-cpu "$QEMU_CPU"} -m $MEM -nodefaults -display none -no-reboot \
			-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
			-kernel "$G/vmlinuz-i386" -initrd "$G/initrd-i386.img" \
			-append "console=ttyS0 panic=-1 quiet ring3.cmd=$b64" \
			</dev/null 2>&1 | timestamp >"$2"
		rc=${PIPESTATUS[0]}
		[ "$rc" = 1 ] && rc=0 # isa-debug-exit: (0 << 1) | 1
	fi
	ok=0
	grep -q " $fsum  /tmp/f\$" "$2" && grep -q " $gzsum  /tmp/g.gz\$" "$2" && [ "$rc" = 0 ] && ok=1
	awk -v t0="$t0" -v rc="$rc" -v ok="$ok" '
		{ t[$2] = $1 }
		$2 == "ring3-guest:" && $3 == "ready" && !("ready" in t) { t["ready"] = $1 }
		function d(a, b) { return (a in t) && (b in t) ? sprintf("%.3f", t[b] - t[a]) : "-" }
		END {
			printf "boot=%s gzip=%s sha256=%s forkexec=%s status=%s ok=%s\n",
				("ready" in t) ? sprintf("%.3f", t["ready"] - t0) : "-",
				d("@@gzip", "@@sha256"), d("@@sha256", "@@forkexec"),
				d("@@forkexec", "@@end"), rc, ok
		}' "$2"
}

native_run() { # prints "gzip=S sha256=S forkexec=S ok=0|1"
	local a b c d ok=1
	a=$EPOCHREALTIME
	"$BB" gzip -c "$tmp/g" >"$tmp/n.gz"
	b=$EPOCHREALTIME
	"$BB" sha256sum "$tmp/f" >"$tmp/n.sum"
	c=$EPOCHREALTIME
	"$BB" sh -c "${loop//\/bin\/true/$tmp/true}" || ok=0
	d=$EPOCHREALTIME
	[ "$(sha256sum <"$tmp/n.gz" | cut -d' ' -f1)" = "$gzsum" ] || ok=0
	grep -q "^$fsum " "$tmp/n.sum" || ok=0
	awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v ok="$ok" 'BEGIN {
		printf "gzip=%.3f sha256=%.3f forkexec=%.3f ok=%s\n", b - a, c - b, d - c, ok }'
}

# From here on a failed run is recorded, not fatal.
set +e
echo "# linux benchmark: $runs runs each of ring3 bt, QEMU TCG and native, interleaved" >&2
: >"$tmp/results"
for r in $(seq 1 "$runs"); do
	if [ $((r % 2)) = 1 ]; then order="ring3 qemu"; else order="qemu ring3"; fi
	for v in $order; do
		echo "$v $r $(vm_run "$v" "$tmp/$v-$r.log")" | tee -a "$tmp/results" >&2
		cp "$tmp/$v-$r.log" "bench/out/linux-$stamp-$v-$r.log"
	done
	echo "native $r $(native_run)" | tee -a "$tmp/results" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { # who name: that field of every good run, one per line
	awk -v who="$1" -v name="$2" '$1 == who && / ok=1/ {
		for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name && kv[2] != "-") print kv[2] }
	}' "$tmp/results"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

for w in boot gzip sha256 forkexec; do
	for who in ring3 qemu native; do
		printf -v "m_${w}_$who" '%s' "$(field $who $w | median)"
	done
done
{
	echo "# linux benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n)"
	echo "# host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# guest: $(basename "$(ls build/debs/i386/boot/vmlinuz-* | sort -V | tail -1)") with $G/initrd-i386.img, ${MEM} MiB, 1 vCPU"
	echo "# ring3: ./ring3 run --engine bt --mem ${MEM}M -- sh -c SCRIPT"
	echo "# qemu:  $($QEMU --version | head -1), -accel tcg -M pc${QEMU_CPU:+ -cpu $QEMU_CPU} -m $MEM, the same kernel, initramfs and script"
	echo "# native: $BB (i386, static) on the host, data in $(dirname "$tmp")"
	echo "# seconds of host wall time; raw results (ok=0: failed or wrong sums, left out):"
	sed 's/^/#   /' "$tmp/results"
	printf '%-22s %10s %10s %10s %8s %10s\n' "median s" ring3-bt qemu-tcg native bt/tcg bt/native
	for w in boot gzip sha256 forkexec; do
		b=m_${w}_ring3 q=m_${w}_qemu nt=m_${w}_native
		case $w in
		boot) label="boot to /init" ;;
		gzip) label="gzip 32 MiB" ;;
		sha256) label="sha256sum 64 MiB" ;;
		forkexec) label="2,000 fork/exec" ;;
		esac
		printf '%-22s %10s %10s %10s %8s %10s\n' "$label" "${!b}" "${!q}" "${!nt:--}" \
			"$(ratio "${!b}" "${!q}")" "$(ratio "${!b}" "${!nt:--}")"
	done
	for who in ring3 qemu native; do
		echo "# $who: $(grep -c "^$who .* ok=1" "$tmp/results") of $runs runs good"
	done
} >"$out"

if [ "${STATS:-1}" != 0 ]; then
	# Where ring3's time goes: one --stats run per step (boot and data
	# included; "true" is the baseline of a boot alone).
	{
		echo "# ring3 --stats, $(date -u '+%Y-%m-%d %H:%M UTC'): one run per step"
		for step in true gzip sha256 forkexec; do
			case $step in
			true) s=true ;;
			gzip) s="$(echo "$guest" | sed -n 1,2p); gzip -c /tmp/g >/tmp/g.gz" ;;
			sha256) s="$(echo "$guest" | sed -n 1,2p); sha256sum /tmp/f" ;;
			forkexec) s=$loop ;;
			esac
			echo "## $step"
			t0=$EPOCHREALTIME
			timeout 600 ./ring3 run --engine bt --mem ${MEM}M --stats -- sh -c "$s" </dev/null 2>&1 |
				tr -d '\r' | sed -n '/^ring3 statistics/,$p'
			echo "## $step: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s wall"
		done
	} >"$statsout"
	grep -E '^## .* s wall|time: guest' "$statsout" | sed 's/^ */# stats: /' >>"$out"
	# The loop's counts per process: its run minus the boot-only run, / 2000.
	counter() { # step, a regex that ends right before the number
		sed -n "/^## $1\$/,/^## $1:/p" "$statsout" | grep -oP "$2[0-9]+" | grep -oP "[0-9]+\$" | head -1
	}
	per=""
	for c in "shadow faults:shadow: faults " "hand-overs:hand-overs " \
		"segment loads:sreg load " "emulate callouts:callouts: .*emulate " \
		"guest page faults:exceptions reflected: .*14:" "system calls:int 0x80/syscall " \
		"control-register moves:mov cr "; do
		a=$(counter true "${c#*:}") b=$(counter forkexec "${c#*:}")
		[ -n "$a" ] && [ -n "$b" ] && per="$per, ${c%%:*} $(((b - a) / 2000))"
	done
	echo "# stats: per fork/exec (the loop's run minus the boot's): ${per#, }" >>"$out"
fi

echo "linux bt/tcg boot ratio $(ratio "$m_boot_ring3" "$m_boot_qemu") bt/native gzip ratio $(ratio "$m_gzip_ring3" "$m_gzip_native") bt/tcg forkexec ratio $(ratio "$m_forkexec_ring3" "$m_forkexec_qemu")" >>"$out"
cat "$out"
