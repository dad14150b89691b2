#!/usr/bin/env bash
# The guest test kernel under the bt engine: re-emit its TAP checks, then one
# line for ring3's exit status (the kernel writes its failure count to port
# 0xf4). A check listed in GAPS below that fails is reported as SKIP with the
# reason: guest ring-3 code runs directly, untranslated, and these four
# non-trapping instructions then show the host's values (docs/bt.md, "What is
# not yet transparent"). A listed check that passes is an ordinary "ok".
set -u
cd "$(dirname "$0")/../.."
K=${TESTKERNEL:-build/guest/testkernel.elf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x ./ring3 ] || [ ! -f "$K" ]; then
	echo "1..0 # SKIP ./ring3 or $K is not built"
	exit 0
fi

# description prefix | why the bt engine fails it today
GAPS='ring 3 reads CS|ring-3 code runs directly: MOV from CS shows the real LDT selector
ring 3 reads SS|ring-3 code runs directly: MOV from SS shows the real LDT selector
sgdt in ring 3|ring-3 code runs directly: SGDT shows the host UMIP value (as Red Pill saw VMware)
sidt in ring 3|ring-3 code runs directly: SIDT shows the host UMIP value (as Red Pill saw VMware)'

gap_reason() { # description -> reason, or nothing
	local d=$1 line
	while IFS= read -r line; do
		case $d in "${line%%|*}"*) echo "${line#*|}"; return ;; esac
	done <<<"$GAPS"
}

timeout 300 ./ring3 run --engine bt --kernel "$K" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
tr -d '\r' <"$tmp/out" >"$tmp/tap"

n=0 fails=0 kfails=0 kchecks=0
while IFS= read -r line; do
	case $line in
	"ok "*)
		kchecks=$((kchecks + 1)) n=$((n + 1))
		echo "ok $n - kernel: ${line#* - }"
		;;
	"not ok "*)
		kchecks=$((kchecks + 1)) kfails=$((kfails + 1)) n=$((n + 1))
		desc=${line#* - }
		why=$(gap_reason "$desc")
		if [ -n "$why" ]; then
			echo "ok $n - kernel: $desc # SKIP $why"
		else
			echo "not ok $n - kernel: $desc"
			fails=$((fails + 1))
		fi
		;;
	"#   "* | "Bail out!"*) echo "# $line" ;;
	esac
done <"$tmp/tap"

plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$tmp/tap")
n=$((n + 1))
if [ -n "$plan" ] && [ "$plan" = "$kchecks" ] && [ "$rc" = "$kfails" ]; then
	echo "ok $n - ring3 exited with the kernel's failure count $rc after its plan 1..$plan"
else
	echo "not ok $n - ring3 exited with status $rc; the kernel failed $kfails of $kchecks (plan ${plan:-none})"
	sed 's/^/#   /' "$tmp/err" | tail -5
	fails=$((fails + 1))
fi
echo "1..$n"
[ "$fails" = 0 ]
