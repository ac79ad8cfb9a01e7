"""The parser: speed on a large file against Lark (the reference, same run), and a long
differential run of the fast parser against Lark.

    python benchmarks/parse.py                    # timings: 0.2 MB both parsers, 1 and 5 MB `resdsl check`
    python benchmarks/parse.py --diff 100000      # compare both parsers on 100k fuzzed inputs

The fast parser (resdsl/frontend/fastparse.py) must give Lark's AST on every input it
accepts; --diff prints how many inputs were the same, how many it handed to Lark, and
every one that differed (exit status 1 if any). An input is handed to Lark for every
syntax error, and for the rare valid program the fast parser leaves to Lark (a keyword
used as a name where it cannot tell how Lark reads it, nesting deeper than 40).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fuzz import big_file, time_big  # noqa: E402

from resdsl import fuzz  # noqa: E402
from resdsl.diagnostics import SourceFile  # noqa: E402
from resdsl.frontend import fastparse, parser  # noqa: E402


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed(mb: float) -> None:
    text = big_file(int(mb * 1e6))
    src = SourceFile("big.res", text)
    lark = best_of(2, lambda: parser.parse_lark(text, src))
    fast = best_of(3, lambda: fastparse.parse(text, src))
    print(f"parse {len(text) / 1e6:.2f} MB: Lark + transform {lark:.2f} s, fast parser {fast:.2f} s, "
          f"ratio {fast / lark:.3f} (fast / Lark)")


def diff(n: int, seed: int) -> int:
    counts, bad = Counter(), []
    t = time.time()
    for text, _ in zip(fuzz.parser_inputs(seed), range(n)):
        r = fuzz.parser_differential(text)
        counts[r if r in ("same", "bail", "slow") else "differ"] += 1
        if r not in ("same", "bail", "slow"):
            bad.append((r, text))
    print(f"{n} inputs in {time.time() - t:.0f} s (seed {seed}): same {counts['same']}, "
          f"errors handed to Lark {counts['bail']}, valid ones handed to Lark {counts['slow']}, "
          f"differ {counts['differ']}")
    for r, text in bad[:20]:
        print(f"--- {r}\n{text[:800]}")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diff", type=int, default=0, help="compare the parsers on this many fuzzed inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mb", type=float, default=0.2, help="size of the file both parsers parse")
    ap.add_argument("--check-mb", type=float, nargs="*", default=[1.0, 5.0],
                    help="sizes of the `resdsl check` timing (a fresh process each)")
    args = ap.parse_args(argv)
    if args.diff:
        return diff(args.diff, args.seed)
    speed(args.mb)
    for mb in args.check_mb:
        print(f"resdsl check, large valid file: {time_big(mb)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
