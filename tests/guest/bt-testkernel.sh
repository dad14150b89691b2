#!/usr/bin/env bash
# The guest test kernel under the bt engine: re-emit its TAP checks, then one
# line for ring3's exit status (the kernel writes its failure count to port
# 0xf4). Every check must pass: a multiboot kernel's ring 3 runs translated
# (--bt-user auto), so reads of CS/SS and SGDT/SIDT in ring 3 show the guest's
# values. With --bt-user direct the same kernel fails exactly those four
# checks (docs/bt.md, "Guest ring 3"), which the last test confirms: direct
# ring 3 is the Linux default and must stay correct apart from them.
set -u
cd "$(dirname "$0")/../.."
K=${TESTKERNEL:-build/guest/testkernel.elf}
. tests/guest/kernel-tap.inc
kernel_setup

timeout 300 ./ring3 run --engine bt --kernel "$K" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
tr -d '\r' <"$tmp/out" >"$tmp/tap"

kernel_tap kernel
kernel_status "the kernel" "$rc"

# direct ring 3: the four non-trapping reads show host values, nothing else differs
timeout 300 ./ring3 run --engine bt --bt-user direct --kernel "$K" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
direct=$(tr -d '\r' <"$tmp/out" | sed -n 's/^not ok [0-9]* - //p' | cut -c1-16 | sort | tr '\n' '|')
want='ring 3 reads CS |ring 3 reads SS |sgdt in ring 3 r|sidt in ring 3 r|'
n=$((n + 1))
if [ "$rc" = 4 ] && [ "$direct" = "$want" ]; then
	echo "ok $n - --bt-user direct: only the 4 ring-3 reads of CS, SS, GDTR, IDTR differ"
else
	echo "not ok $n - --bt-user direct: status $rc, failed: $direct"
	fails=$((fails + 1))
fi
echo "1..$n"
[ "$fails" = 0 ]
