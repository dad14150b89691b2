#!/usr/bin/env bash
# A hostile user process in Debian's i386 guest under bt (guest/linux/
# hostile-user.c, built here and passed in through the command line): each
# privileged or faulting instruction from ring 3 must reach the guest kernel
# as the fault a CPU raises, so Linux kills the process with its usual signal
# (SIGSEGV 139 for #GP and #PF, SIGILL 132 for #UD, SIGTRAP 133 for INT3) and
# the VM carries on; a system call given an unmapped buffer fails with EFAULT
# (the guest kernel's fault in its user copy is fixed up by its exception
# table). The two ways out of compatibility mode that user code has
# (a compat SYSCALL, a far jump to the host's 64-bit selector 0x33) cannot be
# undone; they must stop the VM with one clear line and status 1 (docs/bt.md,
# the sandbox), never reach the host, and not hang (the 120 s timeout's 124).
set -u
cd "$(dirname "$0")/../.."
. tests/guest/i386-guest.inc
build_user guest/linux/hostile-user.c "$tmp/hu"
hu=$(base64 -w0 "$tmp/hu")

run() { # guest shell commands after /tmp/h is in place
	run_bt -- sh -c "echo $hu | base64 -d >/tmp/h && chmod +x /tmp/h && { $1; }"
}

# mode letter, expected status, what it does
cases="x 0 nothing (the exit path itself)
c 139 cli
h 139 hlt
o 139 out to port 0x80
i 139 in from port 0x71
r 139 mov from cr3
w 139 mov to cr0
m 139 rdmsr
g 139 lgdt
v 139 invlpg
n 139 int 0x81 (gate DPL 0)
p 139 a load from a kernel page (0xc0000000)
z 139 a load from page 0
f 14 write(2) from an unmapped buffer: EFAULT by the kernel's exception table
u 132 ud2
3 133 int3
t 139 ljmp to the kernel's TSS (0x80, DPL 0)"
run "for m in $(echo "$cases" | cut -d' ' -f1 | tr '\n' ' '); do /tmp/h \$m; echo \"\$m=\$?\"; done; echo alive"
result "$([ "$rc" = 0 ] && grep -qx alive "$tmp/cmd"; echo $?)" \
	"the guest runs 17 hostile processes and carries on (status $rc)"
while read -r m want what; do
	got=$(sed -n "s/^$m=//p" "$tmp/cmd")
	result "$([ "$got" = "$want" ]; echo $?)" "$what in a user process: status $want (got ${got:-none})"
done <<<"$cases"

for m in s j; do
	case $m in
	s) what="a compat SYSCALL" ;;
	j) what="ljmp \$0x33 (the host's 64-bit code segment)" ;;
	esac
	start=$(date +%s)
	run "/tmp/h $m; echo PWNED"
	secs=$(($(date +%s) - start))
	result "$([ "$rc" = 1 ] && grep -q 'escape its sandbox' "$tmp/out" &&
		! grep -q PWNED "$tmp/cmd"; echo $?)" \
		"$what in a user process stops the VM with one clear line, status 1 (got $rc, ${secs}s)"
done

echo "1..$n"
[ "$fails" = 0 ]
