"""Training memory and time with activation checkpointing (issue 9, item 6).

    python benchmarks/memory.py [--network resnet1202_cifar] [--batch 32] [--steps 3] [--modes none,blocks,sqrt]

A training step (forward + backward, cross-entropy) of the 1202-layer CIFAR ResNet of stdlib/cifar.res
on a batch of 32x32 images, built with `checkpoint=none`, `blocks` and `sqrt`. Each configuration
runs in a fresh process: peak memory is the peak RSS minus the RSS after building (on CPU), or
the CUDA peak minus the memory after building (on a GPU); time per step is the median over the
steps after the first. Printed as ratios against `none`, measured in the same run.

Targets (issue 9): sqrt peak memory <= 1/4 of none, sqrt step time <= 1.4x none's.
A benchmark, never a test: it prints numbers and ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR = str(ROOT / "stdlib" / "cifar.res")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args):
    sys.path.insert(0, str(ROOT))
    import gc

    import torch
    import torch.nn.functional as F
    import torch.utils.checkpoint

    import resdsl
    cuda = torch.cuda.is_available() and not args.cpu
    dev = "cuda" if cuda else "cpu"
    t = time.perf_counter()
    model = resdsl.build(CIFAR, network=args.network, seed=0, checkpoint=args.mode, device=dev).train()
    build_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(dev)
    # load the code torch.utils.checkpoint imports on first use (~100 MB of modules) before the
    # baseline: the same in every configuration, and not activation memory
    lin = torch.nn.Linear(2, 2)
    torch.utils.checkpoint.checkpoint(lin, torch.randn(1, 2, requires_grad=True), use_reentrant=False).sum().backward()
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated() / 2 ** 20
        torch.cuda.reset_peak_memory_stats()
    else:
        base = rss_mb()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else peak_rss_mb()
    print(json.dumps({"mode": args.mode, "device": dev, "build_s": build_s, "base_mb": base,
                      "peak_mb": peak - base, "step_s": statistics.median(times[1:] or times)}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", default="resnet1202_cifar")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="steps per configuration (the first is not timed)")
    ap.add_argument("--modes", default="none,blocks,sqrt")
    ap.add_argument("--cpu", action="store_true", help="measure on the CPU even where CUDA is present")
    ap.add_argument("--child", dest="mode", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mode:
        return child(args)
    import torch
    print(f"{args.network}, batch {args.batch} x 3 x 32 x 32, {args.steps} steps per configuration, torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs" + ("" if args.cpu or not torch.cuda.is_available()
                                                            else f", {torch.cuda.get_device_name()}"))
    rows = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, "--network", args.network, "--batch", str(args.batch),
               "--steps", str(args.steps)] + (["--cpu"] if args.cpu else [])
        # glibc's default mmap threshold (128 KiB), kept fixed: freed tensors go back to the OS, so the
        # RSS follows live memory instead of the allocator's high-water mark (same for every mode)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"))
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            print(f"{mode}: failed\n{r.stderr[-2000:]}")
            continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"  {mode:<8} peak {row['peak_mb']:9.0f} MiB   step {row['step_s']:7.2f} s   "
              f"(build {row['build_s']:.1f} s, {row['device']})", flush=True)
    ref = next((r for r in rows if r["mode"] == "none"), None)
    if ref is None:
        return
    print(f"\n{'checkpoint':<12}{'peak MiB':>10}{'x none':>9}{'step s':>9}{'x none':>9}")
    for r in rows:
        print(f"{r['mode']:<12}{r['peak_mb']:>10.0f}{r['peak_mb'] / ref['peak_mb']:>9.3f}{r['step_s']:>9.2f}"
              f"{r['step_s'] / ref['step_s']:>9.2f}")
    sq = next((r for r in rows if r["mode"] == "sqrt"), None)
    if sq is not None:
        m, s = sq["peak_mb"] / ref["peak_mb"], sq["step_s"] / ref["step_s"]
        print(f"target sqrt memory <= 0.25x none: {m:.3f}x ({'met' if m <= 0.25 else 'MISSED'}); "
              f"sqrt time <= 1.4x none: {s:.2f}x ({'met' if s <= 1.4 else 'MISSED'})")


if __name__ == "__main__":
    main()
