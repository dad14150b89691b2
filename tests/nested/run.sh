#!/usr/bin/env bash
# The nested test bed (docs/kvm.md): ring3's kvm engine tested on emulated
# AMD-V. QEMU's TCG with `-cpu qemu64,+svm` boots Debian's cloud kernel with
# an initramfs that loads kvm-amd and runs tests/nested/cases.inc; its TAP
# comes back on the serial console and is re-emitted here. First, on this
# host, `--engine kvm` must refuse in one line when the CPU lacks VT-x/AMD-V.
set -uo pipefail
cd "$(dirname "$0")/../.."

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; shift; for d in "$@"; do printf '%s\n' "$d" | sed 's/^/#   /'; done; }

# --- on the host ------------------------------------------------------------
ring3=${RING3_BIN:-./ring3}
if [ ! -x "$ring3" ]; then
	echo "1..0 # SKIP $ring3 is not built"
	exit 0
fi
if grep -qw -e vmx -e svm /proc/cpuinfo; then
	ok "--engine kvm refuses hosts without VT-x/AMD-V # SKIP this host has them"
else
	start=$(date +%s%N)
	out=$(timeout 10 "$ring3" run --engine kvm --kernel build/guest-linux/vmlinuz-amd64 2>&1)
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	lines=$(printf '%s\n' "$out" | wc -l)
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$lines" -eq 1 ] &&
	   printf '%s' "$out" | grep -q "no hardware virtualization.*--engine bt"; then
		ok "--engine kvm on this host refuses in one line (${ms} ms): $out"
	else
		notok "--engine kvm on this host refuses in one line" "status $rc, ${ms} ms, output:" "$out"
	fi
fi
out=$(head -c 100000 build/guest-linux/vmlinuz-amd64 > /tmp/ring3-trunc.$$ 2>/dev/null;
      timeout 10 "$ring3" run --kernel /tmp/ring3-trunc.$$ 2>&1)
rc=$?
rm -f /tmp/ring3-trunc.$$
if [ "$rc" -ne 0 ] && printf '%s' "$out" | grep -q "truncated"; then
	ok "a truncated bzImage is refused: $out"
else
	notok "a truncated bzImage is refused" "status $rc: $out"
fi

# --- in the nested test bed -------------------------------------------------
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)
why=""
command -v qemu-system-x86_64 >/dev/null || why="qemu-system-x86_64 is not installed"
[ -n "$kernel" ] || why="no /boot/vmlinuz-*-cloud-amd64 (run scripts/setup.sh)"
[ -e build/guest-linux/initrd-amd64.img ] || why="the default guest is not built (make guest-linux)"
if [ -n "$why" ]; then
	n=$((n + 1))
	echo "ok $n - the nested kvm tests # SKIP $why"
	echo "1..$n"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
extra=()
[ -e build/guest/testkernel.elf ] && extra+=(build/guest/testkernel.elf:/guest/testkernel.elf)
[ -e build/guest/testkernel-pv.elf ] && extra+=(build/guest/testkernel-pv.elf:/guest/testkernel-pv.elf)
for f in vmlinuz-i386 initrd-i386.img; do
	[ -e build/guest-linux/$f ] && extra+=(build/guest-linux/$f:/guest/$f)
done
start=$(date +%s)
# about 100 s on an idle machine; the limit leaves room for a loaded one
scripts/nested-run.sh tests/nested/cases.inc "${RING3_NESTED_TIMEOUT:-400}" "${extra[@]}" \
	>"$tmp/console.txt" 2>&1 &
npid=$!
trap 'kill "$npid" 2>/dev/null; wait "$npid"; exit 130' INT TERM HUP
wait "$npid"
qrc=$?
trap - INT TERM HUP
secs=$(( $(date +%s) - start ))
mkdir -p build/test-logs
cp "$tmp/console.txt" build/test-logs/nested-console.log

# Re-number the guest's TAP after the host's own tests.
base=$n
while IFS= read -r line; do
	case $line in
	"ok "* | "not ok "*)
		num=$(printf '%s' "$line" | sed -E 's/^(not )?ok ([0-9]+).*/\2/')
		rest=$(printf '%s' "$line" | sed -E 's/^(not )?ok [0-9]+//')
		pre=ok
		case $line in "not ok"*) pre="not ok" ;; esac
		n=$((base + num))
		echo "$pre $n$rest"
		;;
	"1..0 "*) echo "# nested: ${line#1..0 }" ;;
	"#"*) echo "$line" ;;
	esac
done < <(sed -n 's/^@@TAP //p' "$tmp/console.txt")
. tests/nested/bed.inc
bed_checks "$tmp/console.txt" "$qrc" "$secs"
echo "1..$n"
