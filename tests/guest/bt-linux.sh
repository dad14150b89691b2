#!/usr/bin/env bash
# Debian's unmodified i386 kernel and the busybox initramfs (make setup) under
# the bt engine: `-- COMMAND` runs in the guest and ring3 exits with its
# status. Checks the machine name, exit statuses, a fork/exec loop, a pipe, a
# checksum of 16 MiB, and that the boot log has no oops or BUG.
set -u
cd "$(dirname "$0")/../.."
G=${RING3_GUEST_DIR:-build/guest-linux}
n=0 fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x ./ring3 ] || [ ! -f "$G/vmlinuz-i386" ] || [ ! -f "$G/initrd-i386.img" ]; then
	echo "1..0 # SKIP ./ring3 or the i386 guest ($G, make setup) is not there"
	exit 0
fi

result() { # ok?, description
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		tr -d '\r' <"$tmp/out" | tail -8 | sed 's/^/#   /'
		fails=$((fails + 1))
	fi
}

run() { # command...: console in $tmp/out, the guest's output after "ready" in $tmp/cmd, status $rc
	timeout 120 ./ring3 run --engine bt -- "$@" </dev/null >"$tmp/out" 2>&1
	rc=$?
	tr -d '\r' <"$tmp/out" | sed -n '/^ring3-guest: ready$/,$p' | sed 1d >"$tmp/cmd"
}

start=$(date +%s.%N)
run uname -m
secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
result "$([ "$rc" = 0 ] && grep -qx i686 "$tmp/cmd"; echo $?)" \
	"uname -m prints i686 (boot and command in $secs s)"
result "$(! grep -aE 'Oops|BUG:|Kernel panic|WARNING|Call Trace|general protection|unchecked MSR' \
	"$tmp/out" >/dev/null; echo $?)" \
	"the console (quiet: warnings and worse) has no oops, BUG, panic, WARNING or MSR error"

run sh -c 'exit 7'
result "$([ "$rc" = 7 ]; echo $?)" "sh -c 'exit 7' exits 7 (got $rc)"

run sh -c 'i=0; while [ $i -lt 200 ]; do /bin/true || exit 1; i=$((i + 1)); done; echo forked $i'
result "$([ "$rc" = 0 ] && grep -qx 'forked 200' "$tmp/cmd"; echo $?)" "200 fork/exec of /bin/true"

run sh -c 'echo hello world | tr a-z A-Z | cat'
result "$([ "$rc" = 0 ] && grep -qx 'HELLO WORLD' "$tmp/cmd"; echo $?)" "a pipeline of three processes"

want=$(head -c 16777216 /dev/zero | tr '\0' 'x' | md5sum | cut -d' ' -f1)
run sh -c 'head -c 16777216 /dev/zero | tr "\0" x | md5sum'
result "$([ "$rc" = 0 ] && grep -q "^$want" "$tmp/cmd"; echo $?)" "md5sum of 16 MiB computed in the guest matches the host's"

echo "1..$n"
[ "$fails" = 0 ]
