#!/usr/bin/env bash
# The guest's dmesg under bt has no warning or oops that QEMU TCG's boot of
# the same kernel and initramfs does not have. Both print their warning-level
# lines (busybox dmesg -r: levels 0-4, emerg to warn); timestamps and numbers
# are normalised away, and any line ring3 shows that QEMU does not fails.
# QEMU runs the PC ring3's bt engine offers: a CPU without a local APIC (so
# the 8259 alone). ring3 gets a disk and a network card on top, so what its
# virtio devices make the kernel say counts against it too. A line that only
# one of up to three boots shows is load, not a fault (see below).
set -u
cd "$(dirname "$0")/../.."
QEMU=qemu-system-i386
DIAG_LINES=20
. tests/guest/i386-guest.inc
command -v $QEMU >/dev/null || { echo "1..0 # SKIP $QEMU is not installed"; exit 0; }


# The guest's warning-level lines after the readiness line, normalised.
warnings() { # console file
	tr -d '\r' <"$1" | sed -n '/^ring3-guest: ready$/,$p' | grep -aE '^<[0-9]+>' |
		sed -E 's/^<([0-9]+)>\[ *[0-9.]+\] ?/<\1>/; s/^<[0-2]>/crit: /; s/^<3>/err: /;
			s/^<4>/warn: /; s/0x[0-9a-fA-F]+/#/g; s/\b[0-9a-fA-F]{8,}\b/#/g;
			s/[0-9]+/#/g' | sort -u
}

cmd="dmesg -r | grep -E '^<[0-4]>'; true"
b64=$(printf '%s' "$cmd" | base64 -w0)
timeout 180 $QEMU -accel tcg -M pc -cpu qemu32,-apic -m 256 -nodefaults -display none \
	-no-reboot -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
	-kernel "$G/vmlinuz-i386" -initrd "$G/initrd-i386.img" \
	-append "console=ttyS0 panic=-1 quiet ring3.cmd=$b64" </dev/null >"$tmp/qemu" 2>&1
qrc=$?
result "$([ "$qrc" = 1 ] && grep -q '^ring3-guest: ready' "$tmp/qemu"; echo $?)" \
	"QEMU TCG boots the kernel and runs dmesg (isa-debug-exit status $qrc)" "$tmp/qemu"

warnings "$tmp/qemu" >"$tmp/q.w"
sed 's/^/# QEMU:  /' "$tmp/q.w"

# A loaded machine can make a boot print a timing warning once (a clocksource
# watchdog's skew, a slow hrtimer interrupt) that the next boot does not: a
# line ring3 adds counts against it when two boots show it. Only when the first
# boot has extra lines do a second and third run, so a quiet run costs one boot.
mkfs.ext4 -q -F "$tmp/d.img" 16M >/dev/null 2>&1 || truncate -s 16M "$tmp/d.img"
: >"$tmp/r.w"
: >"$tmp/seen"
for try in 1 2 3; do
	timeout 120 ./ring3 run --engine bt --disk "$tmp/d.img" --net user -- sh -c "$cmd" \
		</dev/null >"$tmp/ring3" 2>&1
	rrc=$?
	[ "$rrc" = 0 ] && grep -q '^ring3-guest: ready' "$tmp/ring3" || break
	warnings "$tmp/ring3" >"$tmp/r.w"
	sed "s/^/# ring3 (boot $try): /" "$tmp/r.w"
	comm -23 "$tmp/r.w" "$tmp/q.w" >>"$tmp/seen" # each boot's lines are unique (sort -u)
	sort "$tmp/seen" | uniq -c | awk '$1 >= 2 { sub(/^ *[0-9]+ /, ""); print }' >"$tmp/extra"
	[ -s "$tmp/seen" ] && [ ! -s "$tmp/extra" ] || break
done
sort "$tmp/seen" | uniq -c | awk '$1 == 1 { sub(/^ *[0-9]+ /, ""); print "# seen in one boot only (load): " $0 }'
result "$([ "$rrc" = 0 ] && grep -q '^ring3-guest: ready' "$tmp/ring3"; echo $?)" \
	"ring3 bt boots it with a disk and a network card and runs dmesg (status $rrc)" "$tmp/ring3"
result "$([ "$qrc" = 1 ] && [ "$rrc" = 0 ] && [ ! -s "$tmp/extra" ]; echo $?)" \
	"every warning-level line in ring3's dmesg ($(wc -l <"$tmp/r.w")) is in QEMU's too ($(wc -l <"$tmp/q.w")), boot $try" \
	"$tmp/extra"

echo "1..$n"
[ "$fails" = 0 ]
