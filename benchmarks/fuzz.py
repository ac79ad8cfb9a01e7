"""Long fuzz runs (the same fuzzer tests/test_fuzz.py runs on a budget), all generators by default.

    python benchmarks/fuzz.py --seconds 1800 --seed 7        # half an hour, every generator
    python benchmarks/fuzz.py --seconds 60 --big-mb          # a minute, no large-file timing
    python benchmarks/fuzz.py --generators fmt,lexer --inputs 5000 --json out.json

Prints the inputs run and the outcome table: per generator and in all, how many inputs
were ok, located, unlocated, internal, hang, memory; then the slowest inputs and the
timing of a large valid file (--big-mb, default 1 and 5), parsed and elaborated. Bad
inputs are written to --save (a folder) so that they can be replayed. Exit status 1 if
any input was bad.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resdsl import fuzz  # noqa: E402


def big_file(nbytes: int) -> str:
    """A valid file of about `nbytes`: many blocks (each used), comments, and one network."""
    out = ["# a large generated file: blocks, then a network that uses some of them\n"]
    n, i = len(out[0]), 0
    while n < nbytes - 400:
        s = (f"# block {i}: a residual unit\nblock B{i}(c: int = 8, k: int = {1 + 2 * (i % 2)}) {{\n"
             f"    residual {{ conv(c, k, padding=k // 2, bias=false) as conv -> bn -> relu }}\n}}\n")
        out.append(s)
        n += len(s)
        i += 1
    calls = " -> ".join(f"B{j}()" for j in range(0, i, max(1, i // 2000)))
    out.append(f"network Big() {{\n    input x: [1, 8, 8, 8]\n    {calls}\n}}\n")
    return "".join(out)


def time_big(mb: float) -> dict:
    """`python -m resdsl check` of a big valid file, as a user runs it: wall time of the whole
    process (interpreter start included) and its peak memory."""
    import os
    import tempfile
    text = big_file(int(mb * 1e6))
    with tempfile.NamedTemporaryFile("w", suffix=".res", delete=False) as f:
        f.write(text)
    try:
        t = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "resdsl", "check", f.name], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.stdout.read(), proc.stderr.read()  # a few lines: no risk of a full pipe
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, for this child's own peak memory
        wall = time.time() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        Path(f.name).unlink()
    if proc.returncode:
        return {"mb": mb, "error": err[-2000:]}
    return {"mb": round(len(text) / 1e6, 2), "seconds": round(wall, 2), "check": out.strip()[-80:],
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def table(res) -> str:
    """The outcome table: one row per generator and a total, one column per class."""
    head = ["generator", "inputs", *fuzz.CLASSES]
    rows = []
    for gen, counts in sorted(res["by_generator"].items()):
        rows.append([gen, str(sum(counts.values()))] + [str(counts[c]) for c in fuzz.CLASSES])
    rows.append(["all", str(res["inputs"])] + [str(res["counts"][c]) for c in fuzz.CLASSES])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows[:-1]]
                     + [fmt(["-" * w for w in widths]), fmt(rows[-1])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--inputs", type=int, default=None, help="stop after this many inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generators", default="all",
                    help="comma-separated generators, or all (default): " + ", ".join(fuzz.GENERATORS))
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before an input counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=2048, help="memory limit of the worker (the 'memory' class)")
    ap.add_argument("--big-mb", type=float, nargs="*", default=[1.0, 5.0], help="sizes of the large-file timing")
    ap.add_argument("--save", default=None, help="folder for the bad inputs")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    ap.add_argument("--markup", type=int, default=0, metavar="N",
                    help="also push N networks whose names hold markup through every output format")
    args = ap.parse_args(argv)
    t = time.time()
    try:
        gens = "all" if args.generators == "all" else args.generators.split(",")
        fuzz.mix_of(gens)
    except ValueError as e:
        ap.error(str(e))
    res = fuzz.run(seconds=args.seconds, max_inputs=args.inputs, seed=args.seed, timeout=args.timeout,
                   mem_mb=args.mem_mb, log=lambda m: print(m, flush=True), generators=gens)
    wall = time.time() - t
    print(f"\n{res['inputs']} inputs in {wall:.0f}s (seed {args.seed}, generators {args.generators})\n")
    print(table(res))
    print("slowest inputs:")
    for dt, size, gen, cls, _ in res["slowest"]:
        print(f"  {dt:6.2f}s  {size:7d} chars  {gen:8s} {cls}")
    big = [time_big(mb) for mb in args.big_mb]
    for b in big:
        print(f"large valid file: {b}")
    if args.save and res["bad"]:
        folder = Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        for k, (cls, gen, text, detail) in enumerate(res["bad"]):
            (folder / f"{k:04d}-{cls}-{gen}.res").write_text(text, encoding="utf-8", errors="surrogateescape")
            (folder / f"{k:04d}-{cls}-{gen}.txt").write_text(detail)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "inputs": res["inputs"], "seconds": round(wall), "seed": args.seed, "counts": res["counts"],
            "by_generator": res["by_generator"], "big_files": big,
            "slowest": [dict(seconds=round(d, 3), chars=s, generator=g, cls=c) for d, s, g, c, _ in res["slowest"]],
            "bad": [dict(cls=c, generator=g, text=t[:4000], detail=d[:2000]) for c, g, t, d in res["bad"][:200]],
        }, indent=2))
    markup_bad = []
    if args.markup:
        m = fuzz.markup_run(args.markup, seed=args.seed)
        markup_bad = m["bad"]
        print(f"markup names through every output: {m['inputs']} networks, "
              + ", ".join(f"{c} {v}" for c, v in m["counts"].items()) + f", {len(markup_bad)} with problems")
        for text, problems in markup_bad[:5]:
            print(text + "\n  " + "\n  ".join(problems))
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    return 1 if res["bad"] or markup_bad else 0


if __name__ == "__main__":
    sys.exit(main())
