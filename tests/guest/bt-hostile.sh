#!/usr/bin/env bash
# The hostile guest (build/guest/hostile.elf) under the bt engine. Each mode
# tries one way out of the sandbox. Contained modes must end with status 0
# and the guest's own "ok:" lines; escape attempts must stop the VM with one
# clear "escape its sandbox" line and a non-zero status, quickly; and nothing
# outside the sandbox may be touched: no host system call ran (no PWNED
# output, no exit status 42-44 from a host exit_group, no canary file).
set -u
cd "$(dirname "$0")/../.."
K=build/guest/hostile.elf
CANARY=/tmp/ring3-hostile-canary
n=0 fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x ./ring3 ] || [ ! -f "$K" ]; then
	echo "1..0 # SKIP ./ring3 or $K is not built"
	exit 0
fi
if ! ./ring3 run --engine bt --kernel "$K" --append hello >"$tmp/probe" 2>&1; then
	if grep -q "the bt engine" "$tmp/probe"; then
		echo "1..0 # SKIP $(grep -m1 'the bt engine' "$tmp/probe")"
		exit 0
	fi
fi

result() { # ok?, description
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		sed 's/^/#   /' "$tmp/out" | tail -6
		fails=$((fails + 1))
	fi
}

run() { # mode: output in $tmp/out, status in $rc
	rm -f "$CANARY"
	# the port sweep writes NUL bytes to the UART: drop them
	timeout 30 ./ring3 run --engine bt --kernel "$K" --append "$1" </dev/null 2>&1 |
		tr -d '\000' >"$tmp/out"
	rc=${PIPESTATUS[0]}
}

untouched() {
	! grep -aq PWNED "$tmp/out" && [ ! -e "$CANARY" ]
}

for mode in hello int80 sysenter wrtop ports; do
	run "$mode"
	oks=$(grep -ac '^ok: ' "$tmp/out")
	if [ "$mode" = hello ]; then oks=$(grep -ac '^hello$' "$tmp/out"); fi
	result "$([ "$rc" = 0 ] && [ "$oks" -gt 0 ] && ! grep -aq '^FAIL' "$tmp/out" && untouched; echo $?)" \
		"$mode: contained, the guest saw what a CPU does ($(grep -a -m1 -E '^(ok:|hello)' "$tmp/out"))"
done

for mode in syscall far64-exit far64-write far64-creat far64-poke far64-loop; do
	start=$(date +%s)
	run "$mode"
	secs=$(($(date +%s) - start))
	msg=$(grep -a -m1 'escape its sandbox' "$tmp/out")
	result "$([ "$rc" = 1 ] && [ -n "$msg" ] && [ "$secs" -lt 10 ] && untouched; echo $?)" \
		"$mode: reported and stopped with status $rc in ${secs}s: ${msg#ring3: }"
done

echo "1..$n"
[ "$fails" = 0 ]
