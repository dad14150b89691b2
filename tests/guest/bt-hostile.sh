#!/usr/bin/env bash
# The hostile guest (build/guest/hostile.elf) under the bt engine. Each mode
# tries one way out of the sandbox, in ring 0 (translated: every attempt must
# meet the CPU the guest expects, and end with its own "ok:" lines and status
# 0), in ring 0 without translation (RING3_BT_TRANSLATE=0) and in ring 3 (both
# run natively: the attempts that reach the host — SYSCALL, 64-bit code —
# must stop the VM with one clear "escape its sandbox" line and status 1,
# quickly). Nothing outside the sandbox may be touched: no host system call
# ran (no PWNED output, no exit status 42-44 from a host exit_group, no
# canary file). And 3000 chunks of random bytes run in ring 3 for a few seeds
# (the guest cuts each off at its first exception or second timer tick).
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
	timeout 30 ./ring3 run --engine bt --bt-user "$USERMODE" --kernel "$K" --append "$1" </dev/null 2>&1 |
		tr -d '\000' >"$tmp/out"
	rc=${PIPESTATUS[0]}
}

untouched() {
	! grep -aq PWNED "$tmp/out" && [ ! -e "$CANARY" ]
}

contained() { # mode [user], with $how describing the ring
	run "$1"
	local oks
	oks=$(grep -ac -E '^(ok: |hello$)' "$tmp/out")
	result "$([ "$rc" = 0 ] && [ "$oks" -gt 0 ] && ! grep -aq '^FAIL' "$tmp/out" && untouched; echo $?)" \
		"$1 ($how): contained: $(grep -a -m1 -E '^(ok:|hello)' "$tmp/out")"
}

escapes() { # mode [user]
	local start secs msg
	start=$(date +%s)
	run "$1"
	secs=$(($(date +%s) - start))
	msg=$(grep -a -m1 'escape its sandbox' "$tmp/out")
	result "$([ "$rc" = 1 ] && [ -n "$msg" ] && [ "$secs" -lt 10 ] && untouched; echo $?)" \
		"$1 ($how): stopped with status $rc in ${secs}s: ${msg#ring3: vcpu 0: }"
}

ATTACKS="int80 sysenter syscall far64-exit far64-write far64-creat far64-poke far64-loop wrtop ports sse"
ESCAPES="syscall far64-exit far64-write far64-creat far64-poke far64-loop"

USERMODE=direct
how="ring 0, translated"
contained hello
for a in $ATTACKS; do contained "$a"; done

how="ring 3, direct"
for a in hello int80 sysenter wrtop ports sse; do contained "$a user"; done
for a in $ESCAPES; do escapes "$a user"; done

how="ring 3, random bytes"
for seed in 1 10 42; do contained "garbage $seed"; done
how="ring 3, random bytes, one child"
RING3_BT_SPLIT=0 contained "garbage 7"

# --bt-user translate: ring 3 runs from the translation cache, where even the
# attempts that reach the host from direct code meet the CPU the guest expects
USERMODE=translate
how="ring 3, translated"
for a in hello $ATTACKS; do contained "$a user"; done
how="ring 3, translated, random bytes"
for seed in 3 17; do contained "garbage $seed"; done
USERMODE=direct

how="ring 0, direct"
export RING3_BT_TRANSLATE=0
for a in int80 sysenter wrtop; do contained "$a"; done
for a in $ESCAPES; do escapes "$a"; done
unset RING3_BT_TRANSLATE

echo "1..$n"
[ "$fails" = 0 ]
