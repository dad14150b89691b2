#!/bin/bash
# Boot the guest test kernel under QEMU TCG (our stand-in for real hardware)
# and re-emit its TAP checks, then check its exit status, that two runs agree,
# and that every benchmark line of a short bench=all run parses.
# Usage: tests/guest/qemu-testkernel.sh   (TESTKERNEL=path overrides the ELF)
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KERNEL=${TESTKERNEL:-$ROOT/build/guest/testkernel.elf}
NATIVE=${BENCH_NATIVE:-$(dirname "$KERNEL")/bench-native}
QEMU=qemu-system-i386
BENCH_ARGS="bench=all,sieve:1,crc32:2 iters=1000"
BENCH_NAMES="syscall pagefault portio cr3 invlpg int clisti pushfpopf sieve crc32"
SIEVE_PRIMES=1077871 # primes below 16 Mi

if ! command -v "$QEMU" >/dev/null; then
	echo "1..0 # SKIP $QEMU not installed"
	exit 0
fi
if [ ! -f "$KERNEL" ]; then
	# No top-level build yet: build just the guest targets.
	echo 'include guest/guest.mk' | make -s -C "$ROOT" -f - BUILD=build \
		build/guest/testkernel.elf build/guest/bench-native >&2 || {
		echo "1..0 # SKIP cannot build $KERNEL"
		exit 0
	}
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$ROOT/tests/guest/kernel-tap.inc"

ok() { # ok COND DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		fails=$((fails + 1))
	fi
}

# run OUTFILE [QEMU ARGS...]: serial output (CRs removed) to OUTFILE, QEMU's status to $status.
run() {
	local out=$1
	shift
	timeout 60 "$QEMU" -accel tcg -M pc -m 64 -nographic -no-reboot -serial stdio \
		-display none -monitor none -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$KERNEL" "$@" </dev/null 2>"$out.err" | tr -d '\r' >"$out"
	status=${PIPESTATUS[0]}
}

# 1. The checks: each kernel TAP line becomes one of ours, diagnostics follow it.
run "$TMP/checks"
checks_status=$status
kernel_tap kernel "$TMP/checks"
plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$TMP/checks")
ok "$([ -n "$plan" ] && [ "$plan" = "$kchecks" ] && [ "$plan" -gt 0 ]; echo $?)" \
	"kernel printed its plan (1..${plan:-?}) after $kchecks checks"
ok "$([ "$checks_status" = 1 ]; echo $?)" \
	"QEMU exit status 1: the kernel wrote 0 failures to port 0xf4 (got $checks_status)"
[ "$checks_status" = 1 ] || sed 's/^/# stderr: /' "$TMP/checks.err" | head -5

# 2. Determinism: a second run prints the same TAP lines (numbers aside: a
# description may carry a count, e.g. of timer ticks, that a loaded host changes).
run "$TMP/checks2"
tapof() { grep -E '^(not )?ok |^1\.\.' "$1" | sed -E 's/[0-9]+/N/g'; }
diff <(tapof "$TMP/checks") <(tapof "$TMP/checks2") >"$TMP/determinism.diff"
ok "$?" "a second run prints identical TAP lines"
sed 's/^/#   /' "$TMP/determinism.diff" | head -10

# 3. A short benchmark run: every line present and in the documented format.
run "$TMP/bench" -append "$BENCH_ARGS"
bench_status=$status
ok "$(grep -Eq '^tsc mhz=[0-9]+\.[0-9]{3} source=[a-z0-9-]+$' "$TMP/bench"; echo $?)" \
	"bench: tsc line parses"
for b in $BENCH_NAMES; do
	ok "$(grep -Eq "^bench $b iters=[0-9]+ cycles_per_iter=[0-9]+ ns_per_iter=[0-9]+\.[0-9]( result=[0-9]+)?$" \
		"$TMP/bench"; echo $?)" "bench: $b line parses"
done
ok "$(grep -q "^bench sieve .* result=$SIEVE_PRIMES$" "$TMP/bench"; echo $?)" \
	"bench: sieve finds $SIEVE_PRIMES primes below 16 Mi"
ok "$([ "$bench_status" = 1 ]; echo $?)" "bench: QEMU exit status 1 (got $bench_status)"

# 4. bench-native computes the same CRC over the same bytes.
if [ -x "$NATIVE" ]; then
	guest_crc=$(sed -n 's/^bench crc32 iters=2 .* result=\([0-9]*\)$/\1/p' "$TMP/bench")
	native_crc=$("$NATIVE" bench=crc32:2 | sed -n 's/^bench crc32 iters=2 .* result=\([0-9]*\)$/\1/p')
	ok "$([ -n "$guest_crc" ] && [ "$guest_crc" = "$native_crc" ]; echo $?)" \
		"bench-native and the guest agree on crc32 ($native_crc)"
fi

echo "1..$n"
[ "$fails" = 0 ]
