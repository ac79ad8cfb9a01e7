"""Compile-time and run-time benchmark of resdsl against torchvision (issue 2, part 10).

    python benchmarks/compile_time.py [--runs 7] [--forward-runs 15] [--batch 8] [--profile]

1. `.res` text -> torch.fx GraphModule without weight initialisation (device="meta"):
   parse + elaborate + shape-check (`resdsl.graph`) and lowering (`to_fx`), for
   resnet50, resnet152 and a 1202-layer CIFAR ResNet (examples/cifar_resnet.res, n=200),
   plus smaller CIFAR depths to show whether time grows linearly with depth.
   Imports (torch, lark grammar) are warmed up first and not counted.
2. `resdsl.build(stdlib/resnet.res, network="resnet50")` with weights (CPU, initialised)
   against `torchvision.models.resnet50()`, in the same run, interleaved.
3. Eager forward of both with the same weights (torchvision's state_dict loaded into the
   built module) and the same input, eval mode, no_grad, interleaved; medians.

Targets (issue 2): resnet152 < 150 ms, 1202 layers < 2 s, build <= 1.1x torchvision,
forward within 2 %. A benchmark, never a test: it prints numbers and ratios.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESNET = str(ROOT / "stdlib" / "resnet.res")
CIFAR = str(ROOT / "examples" / "cifar_resnet.res")


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def weighted_layers(g) -> int:
    """Conv and linear layers, as the depth of a ResNet is counted (shortcut projections included)."""
    return sum(1 for n in g.nodes if n.op in ("conv", "linear"))


def compile_section(runs, profile):
    import resdsl
    from resdsl.backends.torch.build import to_fx

    cases = [("resnet50", RESNET, dict(network="resnet50"), 50),
             ("resnet152", RESNET, dict(network="resnet152"), 152)]
    for n in (18, 50, 100, 200):
        cases.append((f"cifar {6 * n + 2} layers (n={n})", CIFAR, dict(n=n), 6 * n + 2))
    print("\n== .res text -> GraphModule, no weight init (device='meta') ==")
    print(f"{'network':<28}{'depth':>6}{'ops':>7}{'elaborate':>11}{'lower':>9}{'total':>9}{'build()':>9}"
          f"{'best':>9}{'us/layer':>10}{'us/op':>8}")
    rows = {}
    for label, path, kw, depth in cases:
        g = resdsl.graph(path, **kw)
        nops = len(g.nodes)
        t_el, _ = median_time(lambda: resdsl.graph(path, **kw), runs)
        t_lo, _ = median_time(lambda: to_fx(g, device="meta"), runs)
        t_b, best = median_time(lambda: resdsl.build(path, device="meta", **kw), runs)
        rows[label] = t_b
        print(f"{label:<28}{depth:>6}{nops:>7}{t_el * 1e3:>9.1f}ms{t_lo * 1e3:>7.1f}ms{(t_el + t_lo) * 1e3:>7.1f}ms"
              f"{t_b * 1e3:>7.1f}ms{best * 1e3:>7.1f}ms{t_b / depth * 1e6:>10.0f}{t_b / nops * 1e6:>8.1f}")
    print("(elaborate = parse + elaborate + shape-check; lower = modules on meta + fx codegen; "
          "build() = resdsl.build(..., device='meta'), the number the targets use; medians)")
    print(f"target resnet152 < 150 ms: {rows['resnet152'] * 1e3:.1f} ms "
          f"({'met' if rows['resnet152'] < 0.150 else 'MISSED'})")
    big = rows["cifar 1202 layers (n=200)"]
    print(f"target 1202 layers < 2 s: {big:.3f} s ({'met' if big < 2.0 else 'MISSED'})")
    small = rows["cifar 110 layers (n=18)"]
    print(f"linearity: 1202-layer time / 110-layer time = {big / small:.1f} (depth ratio {1202 / 110:.1f})")
    if profile:
        for label, path, kw in (("resnet152", RESNET, dict(network="resnet152")),
                                ("cifar n=200", CIFAR, dict(n=200))):
            pr = cProfile.Profile()
            pr.enable()
            resdsl.build(path, device="meta", **kw)
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(25)
            print(f"\n-- cProfile: build({label}, device='meta'), cumulative --")
            print(s.getvalue())


def build_section(runs):
    import torchvision

    import resdsl
    print("\n== build with weights (CPU, initialised): resdsl vs torchvision, interleaved ==")
    ours, theirs = [], []
    for _ in range(runs):
        for fn, acc in ((lambda: resdsl.build(RESNET, network="resnet50"), ours),
                        (lambda: torchvision.models.resnet50(), theirs)):
            gc.collect()
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"resdsl.build(resnet50)         median {a * 1e3:8.1f} ms  (min {min(ours) * 1e3:.1f})")
    print(f"torchvision.models.resnet50()  median {b * 1e3:8.1f} ms  (min {min(theirs) * 1e3:.1f})")
    print(f"ratio {a / b:.3f} (target <= 1.10: {'met' if a / b <= 1.10 else 'MISSED'})")


def forward_section(runs, batch):
    import torch
    import torchvision

    import resdsl
    print(f"\n== eager forward, resnet50, eval, no_grad, input {batch}x3x224x224, "
          f"{torch.get_num_threads()} threads, interleaved ==")
    torch.manual_seed(0)
    tv = torchvision.models.resnet50().eval()
    gm = resdsl.build(RESNET, network="resnet50", weights=tv.state_dict()).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), tv(x), rtol=1e-4, atol=1e-4)  # same function
        for _ in range(2):  # warm-up
            gm(x)
            tv(x)
        ours, theirs = [], []
        for i in range(runs):
            order = ((gm, ours), (tv, theirs)) if i % 2 == 0 else ((tv, theirs), (gm, ours))
            for m, acc in order:
                t = time.perf_counter()
                m(x)
                acc.append(time.perf_counter() - t)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"resdsl GraphModule   median {a * 1e3:8.1f} ms  (min {min(ours) * 1e3:.1f})")
    print(f"torchvision ResNet   median {b * 1e3:8.1f} ms  (min {min(theirs) * 1e3:.1f})")
    print(f"ratio {a / b:.3f} (target at most 1.02x torchvision: {'met' if a / b <= 1.02 else 'MISSED'}); "
          f"ratio of minima {min(ours) / min(theirs):.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="runs per compile/build measurement (median)")
    ap.add_argument("--forward-runs", type=int, default=21, help="forward passes per model (median)")
    ap.add_argument("--batch", type=int, default=4, help="forward batch size")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the forward (0: torch's default)")
    ap.add_argument("--profile", action="store_true", help="cProfile the meta builds")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: compile,build,forward")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    t = time.perf_counter()
    import torch
    import torchvision  # noqa: F401

    import resdsl
    if args.threads:
        torch.set_num_threads(args.threads)
    resdsl.build(CIFAR, device="meta")  # warm up: imports, the lark grammar, torch.fx
    resdsl.build(RESNET, network="resnet18")
    print(f"resdsl {resdsl.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; warm-up (imports excluded below) {time.perf_counter() - t:.2f} s")
    if "compile" not in skip:
        compile_section(args.runs, args.profile)
    if "build" not in skip:
        build_section(args.runs)
    if "forward" not in skip:
        forward_section(args.forward_runs, args.batch)


if __name__ == "__main__":
    main()
