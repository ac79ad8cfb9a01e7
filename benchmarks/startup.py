"""Start-up of the command line: `resdsl check examples/cifar_resnet.res`, whole process.

    python benchmarks/startup.py [--runs 20]

Prints the median and best wall time and CPU time (the target is about 0.2 s wall on an
idle machine; on a shared one compare CPU time). The first run warms the Lark table cache
(~/.cache/resdsl) and the bytecode cache, as an installed package has both.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "resdsl", "check", str(ROOT / "examples" / "cifar_resnet.res")]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    walls, cpus = [], []
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(f"resdsl check (whole process), {args.runs} runs: wall median {statistics.median(walls):.3f} s, "
          f"best {min(walls):.3f} s; CPU median {statistics.median(cpus):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
