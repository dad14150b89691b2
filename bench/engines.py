#!/usr/bin/env python3
"""The engine comparison (issues 4 and 7): the test kernel's micro-benchmarks
and CPU loops under ring3's engines and QEMU TCG, and the loops as a native
32-bit Linux process, interleaved round by round in one run. pv-bt is the
paravirtual build of the same kernel (testkernel-pv.elf, docs/pv.md) under the
bt engine. Prints a table of medians (ns per operation), writes
bench/out/engines.md and the chart bench/out/engines.svg (docs/engines.svg is
a copy of it), and ends with
  engines bt/native sieve ratio R1 tcg/bt sieve ratio R2
  engines pv/bt pte-update ratio R4
  engines pv/bt syscall ratio R3
An engine that cannot run here is shown as n/a with the reason.

Times are TSC cycles (every engine here reads the host's TSC) over the host's
TSC rate as bench-native measures it against clock_gettime, not the guest's
own calibration, which a loaded machine can skew."""
import html, math, os, re, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = os.path.join(ROOT, "build/guest/testkernel.elf")
KERNEL_PV = os.path.join(ROOT, "build/guest/testkernel-pv.elf")
NATIVE = os.path.join(ROOT, "build/guest/bench-native")
RING3 = os.environ.get("RING3_BIN", os.path.join(ROOT, "ring3"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
OPS = ["syscall", "pagefault", "portio", "cr3", "invlpg", "int", "clisti", "pushfpopf",
       "sieve", "crc32"]
LINE = re.compile(r"^bench (\S+) iters=(\d+) cycles_per_iter=(\d+) ns_per_iter=([\d.]+)")
TSC = re.compile(r"^tsc mhz=([\d.]+) source=clock_gettime")
host_mhz = None  # the host TSC rate, from bench-native's first run


def parse(text):
    global host_mhz
    out = {}
    for line in text.splitlines():
        m = TSC.match(line.strip())
        if m and host_mhz is None:
            host_mhz = float(m.group(1))
        m = LINE.match(line.strip())
        if m:
            out[m.group(1)] = (float(m.group(3)), float(m.group(4)))  # cycles, guest ns
    return out


def run(cmd, timeout=600):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    except OSError as e:
        return None, f"cannot run {cmd[0]}: {e.strerror}"
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
    "ring3-pv-bt": lambda: run([RING3, "run", "--engine", "bt", "--mem", "64M", "--kernel",
                                KERNEL_PV, "--append", "bench=all"]),
}
# kvm and pv-on-kvm: on the host where it has hardware virtualization, else in
# the nested test bed (QEMU TCG emulating AMD-V, docs/kvm.md), marked "(nested)":
# one boot of the bed runs NESTED_ROUNDS rounds (default 1) of both kernels.
HW_VIRT = bool(re.search(r"\b(vmx|svm)\b", open("/proc/cpuinfo").read())) and \
    os.access("/dev/kvm", os.R_OK | os.W_OK)
if HW_VIRT:
    ENGINES["ring3-kvm"] = lambda: run([RING3, "run", "--engine", "kvm", "--mem", "64M",
                                        "--kernel", KERNEL, "--append", "bench=all"])
    ENGINES["ring3-pv-kvm"] = lambda: run([RING3, "run", "--engine", "kvm", "--mem", "64M",
                                           "--kernel", KERNEL_PV, "--append", "bench=all"])
NESTED = ["ring3-kvm (nested)", "ring3-pv-kvm (nested)"]
NESTED_ROUNDS = int(os.environ.get("NESTED_ROUNDS", "1"))
COLOURS = {"native": "#4d4d4d", "qemu-tcg": "#e69f00", "ring3-bt": "#0072b2",
           "ring3-pv-bt": "#009e73", "ring3-kvm": "#cc79a7", "ring3-pv-kvm": "#d55e00",
           "ring3-kvm (nested)": "#cc79a7", "ring3-pv-kvm (nested)": "#d55e00"}


def run_nested():
    """Both kernels under the kvm engine in one boot of the nested test bed.
    Returns ({engine: {op: [(cycles, ns), ...]}}, None) or (None, why)."""
    if NESTED_ROUNDS < 1:
        return None, "NESTED_ROUNDS=0"
    os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)  # a fresh clone has none
    rounds = os.path.join(ROOT, "bench/out/engines-nested-rounds")
    with open(rounds, "w") as f:
        f.write(f"{NESTED_ROUNDS}\n")
    try:
        p = subprocess.run([os.path.join(ROOT, "scripts/nested-run.sh"), "bench/engines-nested.inc",
                            str(600 + 900 * 2 * NESTED_ROUNDS), f"{KERNEL}:/bench/testkernel.elf",
                            f"{KERNEL_PV}:/bench/testkernel-pv.elf", f"{rounds}:/bench/rounds"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT)
    except OSError as e:
        return None, f"cannot run the nested test bed: {e.strerror}"
    out = {e: {} for e in NESTED}
    for line in p.stdout.splitlines():
        w = line.split(" ", 2)
        if len(w) == 3 and w[0] == "@@ENG" and w[1] in ("ring3-kvm", "ring3-pv-kvm"):
            m = LINE.match(w[2].strip())
            if m:
                out[w[1] + " (nested)"].setdefault(m.group(1), []).append(
                    (float(m.group(3)), float(m.group(4))))
    if not any(out.values()):
        err = (p.stderr.strip().splitlines() or [f"no benchmark output (status {p.returncode})"])
        return None, "the nested test bed: " + err[-1]
    return out, None


def svg_chart(med, cols, ops, title):
    """Grouped bars, one group per operation, log-scale ns, one colour per engine."""
    vals = [med(e, op) for op in ops for e in cols if med(e, op)]
    lo = 10 ** math.floor(math.log10(min(vals))) if vals else 1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 10
    if hi <= lo:
        hi = lo * 10
    W, H, left, top, bottom = 900, 420, 70, 40, 70
    ph = H - top - bottom
    gw = (W - left - 20) / len(ops)
    bw = (gw - 12) / len(cols)

    def y(v):
        return top + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    d = lo
    while d <= hi * 1.001:
        out.append(f'<line x1="{left}" x2="{W - 20}" y1="{y(d):.1f}" y2="{y(d):.1f}" '
                   f'stroke="#ddd"/>')
        label = f"{d:g} ns" if d < 1e3 else (f"{d / 1e3:g} µs" if d < 1e6 else f"{d / 1e6:g} ms")
        out.append(f'<text x="{left - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{label}</text>')
        d *= 10
    for i, op in enumerate(ops):
        x0 = left + i * gw + 6
        for j, e in enumerate(cols):
            v = med(e, op)
            if not v:
                continue
            yy = y(max(v, lo))
            out.append(f'<rect x="{x0 + j * bw:.1f}" y="{yy:.1f}" width="{bw - 1:.1f}" '
                       f'height="{top + ph - yy:.1f}" fill="{COLOURS.get(e, "#999")}">'
                       f'<title>{html.escape(e)} {html.escape(op)}: {v:,.1f} ns</title></rect>')
        out.append(f'<text x="{x0 + gw / 2 - 6:.1f}" y="{top + ph + 16}" '
                   f'text-anchor="middle">{html.escape(op)}</text>')
    lx = left
    for e in cols:
        out.append(f'<rect x="{lx}" y="{H - 30}" width="12" height="12" '
                   f'fill="{COLOURS.get(e, "#999")}"/>')
        out.append(f'<text x="{lx + 16}" y="{H - 20}">{html.escape(e)}</text>')
        lx += 16 + 7 * len(e) + 14
    out.append("</svg>")
    return "\n".join(out) + "\n"


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
            for op, (cycles, ns) in res.items():
                if op in results[e]:
                    results[e][op].append(cycles * 1000 / host_mhz if host_mhz else ns)
        print(f"# round {r + 1}/{ROUNDS} done", file=sys.stderr)
    if not HW_VIRT:
        nested, err = run_nested()
        for e in NESTED:
            results[e] = {op: [] for op in OPS}
            if err:
                why[e] = err
                continue
            for op, vals in nested[e].items():
                if op in results[e]:
                    results[e][op] += [c * 1000 / host_mhz if host_mhz else ns for c, ns in vals]
        print("# nested test bed done", file=sys.stderr)

    def med(e, op):
        v = results[e][op]
        return statistics.median(v) if v else None

    cols = list(results)
    lines = [f"Engine comparison, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}, "
             f"{ROUNDS} rounds, median ns per operation "
             f"(host TSC {host_mhz or 0:.0f} MHz; load average {os.getloadavg()[0]:.1f})",
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
    if not HW_VIRT:
        lines.append("\n(nested): the kvm engine in the nested test bed, QEMU TCG emulating "
                     "AMD-V on this host without hardware virtualization (docs/kvm.md): what "
                     "its paths cost there, not on hardware")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench/out/engines.md"), "w") as f:
        f.write(text + "\n")
    shown = [e for e in cols if e not in why]
    with open(os.path.join(ROOT, "bench/out/engines.svg"), "w") as f:
        f.write(svg_chart(med, shown, OPS, f"ring3 engines, median ns per operation (log scale), "
                          f"{time.strftime('%Y-%m-%d')}"))

    def ratio(a, b, op="sieve"):
        x, y = med(a, op), med(b, op)
        return f"{x / y:.2f}" if x and y else "n/a"
    print(f"engines bt/native sieve ratio {ratio('ring3-bt', 'native')} "
          f"tcg/bt sieve ratio {ratio('qemu-tcg', 'ring3-bt')}")
    # the PTE update is the invlpg benchmark: retarget a PTE, flush it, touch the page
    print(f"engines pv/bt pte-update ratio {ratio('ring3-pv-bt', 'ring3-bt', 'invlpg')}")
    print(f"engines pv/bt syscall ratio {ratio('ring3-pv-bt', 'ring3-bt', 'syscall')}")


if __name__ == "__main__":
    main()
