#!/usr/bin/env python3
"""The interactive console through a pseudo-terminal, as a person uses it:
boot the default guest, type a command at the shell, read the answer, leave
with C-a x, and find the terminal as it was. Then the same with
--console virtio, where what is typed goes to the guest's hvc0 (virtio-console)
and the shell runs there. Prints TAP."""
import os, pty, select, sys, termios, time

RING3 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ring3")
n = 0
failed = 0


def tap(cond, name, diag=""):
    global n, failed
    n += 1
    print(("ok" if cond else "not ok") + f" {n} - {name}")
    if not cond:
        failed += 1
        for line in diag.splitlines()[-15:]:
            print("#   " + line)
    sys.stdout.flush()


def read_until(fd, want, timeout, buf):
    end = time.time() + timeout
    while want not in buf[0]:
        left = end - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        buf[0] += data.decode("utf-8", "replace")
    return True


def session(args, tty, what):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(RING3, [RING3, "run"] + args)
    before = termios.tcgetattr(fd)
    buf = [""]
    tap(read_until(fd, "ring3-guest: ready", 180, buf), f"{what}: the guest says it is ready", buf[0])
    ok = read_until(fd, "# ", 30, buf)
    tap(ok, f"{what}: a shell prompt appears", buf[0])
    os.write(fd, b"echo answer$((6*7))\r")
    tap(read_until(fd, "answer42", 30, buf), f"{what}: a typed command is answered", buf[0])
    # the shell's terminal says which console the typing reached
    os.write(fd, b"echo on-$(tty)\r")
    tap(read_until(fd, "on-" + tty, 30, buf), f"{what}: the shell reads from {tty}", buf[0])
    os.write(fd, b"\x01h")
    tap(read_until(fd, "C-a x", 10, buf), f"{what}: C-a h lists the keys", buf[0])
    os.write(fd, b"\x01x")
    status = None
    end = time.time() + 30
    while time.time() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            status = os.waitstatus_to_exitcode(st)
            break
        try:
            select.select([fd], [], [], 0.2)
            os.read(fd, 4096)
        except OSError:
            pass
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    tap(status == 0, f"{what}: C-a x ends ring3 with status 0 (got {status})", buf[0])
    try:
        after = termios.tcgetattr(fd)
        tap(after == before, f"{what}: the terminal is restored")
    except termios.error as e:
        tap(False, f"{what}: the terminal is restored", str(e))
    os.close(fd)


def main():
    args = sys.argv[1:]
    session(args, "/dev/ttyS0", "ttyS0")
    session(args + ["--console", "virtio"], "/dev/hvc0", "--console virtio")
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
