#!/usr/bin/env bash
# The paravirtual test kernel (build/guest/testkernel-pv.elf, docs/pv.md)
# under the bt engine: every one of its TAP checks passes (the ABI's answers
# and error paths among them), ring3 exits with its failure count, --stats
# counts the hypercalls by number, and its fuzz mode (pvfuzz=N:seed: random
# call numbers and arguments from ring 0) ends with ring3 alive, every call
# answered, every refusal one of the documented errors, and every call made
# with arguments ring3 must refuse refused; and with USER_LIMIT declared its
# system calls hide no kernel pages from ring 3.
set -u
cd "$(dirname "$0")/../.."
K=${TESTKERNEL_PV:-build/guest/testkernel-pv.elf}
. tests/guest/kernel-tap.inc
kernel_setup

timeout 300 ./ring3 run --engine bt --stats --kernel "$K" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
tr -d '\r' <"$tmp/out" >"$tmp/tap"

kernel_tap "pv kernel"
pvchecks=$(grep -c '^ok .* - pv: ' "$tmp/tap")
kernel_status "the pv kernel" "$rc"

# the kernel really is the pv build: its ABI checks ran (discovery, errors, MMU_UPDATE)
n=$((n + 1))
if [ "$pvchecks" -ge 30 ]; then
	echo "ok $n - the pv kernel ran $pvchecks checks of the ABI's answers and error paths"
else
	echo "not ok $n - only $pvchecks checks of the ABI ran (is $K the -DTK_PV build?)"
	fails=$((fails + 1))
fi

# --stats: calls by number; SET_CR3 and MMU_UPDATE were made, unknown numbers counted apart
n=$((n + 1))
if grep -qE '^ +10 set_cr3 +[1-9]' "$tmp/err" && grep -qE '^ +11 mmu_update +[1-9]' "$tmp/err" &&
	grep -qE '^ +\? \(no such call\) +2$' "$tmp/err"; then
	echo "ok $n - --stats counts hypercalls by number (set_cr3, mmu_update, 2 unknown)"
else
	echo "not ok $n - --stats has no per-number hypercall table"
	grep -A20 'hypercalls by number' "$tmp/err" | sed 's/^/#   /'
	fails=$((fails + 1))
fi

# USER_LIMIT (docs/pv.md): the pv kernel declared its split, so its system calls hide
# nothing from ring 3 (the native build's hide and show ~2 runs each per call)
timeout 120 ./ring3 run --engine bt --stats --kernel "$K" --append "bench=syscall:2000" \
	</dev/null >"$tmp/sc" 2>"$tmp/scerr"
hidden=$(grep -oE 'kernel-only runs hidden [0-9]+' "$tmp/scerr" | grep -oE '[0-9]+$')
n=$((n + 1))
if grep -q '^bench syscall iters=2000 ' "$tmp/sc" && [ -n "$hidden" ] && [ "$hidden" -lt 200 ]; then
	echo "ok $n - USER_LIMIT: 2000 system calls hid $hidden kernel-only runs from ring 3 (no mprotect per call)"
else
	echo "not ok $n - USER_LIMIT: 2000 system calls hid '${hidden:-?}' kernel-only runs (want < 200)"
	grep -E '^bench|kernel-only' "$tmp/sc" "$tmp/scerr" | sed 's/^/#   /'
	fails=$((fails + 1))
fi

# fuzz: random numbers and arguments; ring3 must answer each, and the kernel then passes every check
for seed in 1 2718281 31415926; do
	timeout 120 ./ring3 run --engine bt --kernel "$K" --append "pvfuzz=20000:$seed" \
		</dev/null >"$tmp/fuzz" 2>"$tmp/ferr"
	rc=$?
	summary=$(tr -d '\r\0' <"$tmp/fuzz" | grep '^# pvfuzz: done: ' || true)
	n=$((n + 1))
	case "$rc:$summary" in
	"0:# pvfuzz: done: 20000 calls, "*", 0 wrong results")
		echo "ok $n - pvfuzz seed $seed: ring3 answered 20000 random calls (${summary#*calls, })"
		;;
	*)
		echo "not ok $n - pvfuzz seed $seed: status $rc, '${summary:-no summary}'"
		tr -d '\0' <"$tmp/fuzz" | tail -5 | sed 's/^/#   /'
		tail -3 "$tmp/ferr" | sed 's/^/#   /'
		fails=$((fails + 1))
		;;
	esac
done

echo "1..$n"
exit $((fails > 0))
