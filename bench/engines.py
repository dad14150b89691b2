#!/usr/bin/env python3
"""The engine comparison (issues 4 and 7): the test kernel's micro-benchmarks
and CPU loops under ring3's engines and QEMU TCG, and the loops as a native
32-bit Linux process, interleaved round by round in one run. Prints a table of
medians (ns per operation), writes bench/out/engines.md, and ends with
  engines bt/native sieve ratio R1 tcg/bt sieve ratio R2
An engine that cannot run here is shown as n/a with the reason."""
import os, re, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join(ROOT, "build/guest/testkernel.elf")
NATIVE = os.path.join(ROOT, "build/guest/bench-native")
RING3 = os.path.join(ROOT, "ring3")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
OPS = ["syscall", "pagefault", "portio", "cr3", "invlpg", "int", "clisti", "pushfpopf",
       "sieve", "crc32"]
LINE = re.compile(r"^bench (\S+) iters=(\d+) cycles_per_iter=(\d+) ns_per_iter=([\d.]+)")


def parse(text):
    out = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[m.group(1)] = float(m.group(4))
    return out


def run(cmd, timeout=600):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    res = parse(p.stdout)
    if not res:
        err = (p.stderr.strip().splitlines() or ["no benchmark output"])[-1]
        return None, err
    return res, None


ENGINES = {
    "native": lambda: run([NATIVE, "bench=sieve,crc32"]),
    "qemu-tcg": lambda: run(["qemu-system-i386", "-accel", "tcg", "-M", "pc", "-m", "64",
                             "-nographic", "-no-reboot", "-display", "none", "-monitor", "none",
                             "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                             "-kernel", KERNEL, "-append", "bench=all"]),
    "ring3-bt": lambda: run([RING3, "run", "--engine", "bt", "--mem", "64M", "--kernel", KERNEL,
                             "--append", "bench=all"]),
}


def main():
    results = {e: {op: [] for op in OPS} for e in ENGINES}
    why = {}
    for r in range(ROUNDS):
        for e, fn in ENGINES.items():
            if e in why:
                continue
            res, err = fn()
            if err:
                why[e] = err
                continue
            for op, ns in res.items():
                if op in results[e]:
                    results[e][op].append(ns)
        print(f"# round {r + 1}/{ROUNDS} done", file=sys.stderr)

    def med(e, op):
        v = results[e][op]
        return statistics.median(v) if v else None

    cols = list(ENGINES)
    lines = [f"Engine comparison, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}, "
             f"{ROUNDS} rounds, median ns per operation",
             "", "| operation | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for op in OPS:
        cells = []
        for e in cols:
            m = med(e, op)
            cells.append("n/a" if m is None else (f"{m:,.1f}" if m < 1e5 else f"{m/1e6:,.2f} ms"))
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    for e, w in why.items():
        lines.append(f"\n{e}: n/a — {w}")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench/out/engines.md"), "w") as f:
        f.write(text + "\n")

    def ratio(a, b):
        x, y = med(a, "sieve"), med(b, "sieve")
        return f"{x / y:.2f}" if x and y else "n/a"
    print(f"engines bt/native sieve ratio {ratio('ring3-bt', 'native')} "
          f"tcg/bt sieve ratio {ratio('qemu-tcg', 'ring3-bt')}")


if __name__ == "__main__":
    main()
