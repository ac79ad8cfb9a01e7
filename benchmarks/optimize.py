"""What the optimizer buys: CPU latency of -O0 vs -O2, against the reference implementations.

One run measures, with the same weights (random init, randomised BatchNorm statistics):
  * eager torch, batch 1 and 16: resnet50 (torchvision vs resdsl -O0 / -O2) and
    repvgg_a0 (timm vs resdsl -O0 / -O2, and timm's own reparameterize_model);
  * onnxruntime: the -O0 and -O2 ONNX files of both networks.
Models are timed in interleaved rounds (A B C A B C ...) and the median is reported, so a
noisy shared machine slows every model alike. Ratios are against the named reference.

    python benchmarks/optimize.py [--size 224] [--rounds 7] [--batches 1,16] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resdsl.api as api  # noqa: E402


def randomise_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return model.eval()


def interleaved(fns: dict, rounds: int, per_round: int) -> dict:
    """name -> median seconds per call; fns are called round-robin."""
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                f()
            times[k].append((time.perf_counter() - t0) / per_round)
    return {k: statistics.median(v) for k, v in times.items()}


def eager(model, x):
    def run():
        with torch.inference_mode():
            model(x)
    return run


def check_same(models: dict, x):
    with torch.inference_mode():
        outs = {k: m(x) for k, m in models.items()}
    ref = next(iter(outs.values()))
    for k, y in outs.items():
        err = float((y - ref).abs().max() / ref.abs().max())
        assert err < 1e-4, f"{k} differs from the reference by {err:.2e} (relative)"


def report(title, res, ref):
    print(f"\n{title}  (median of interleaved rounds; speed-up = {ref} / model)")
    for k, t in res.items():
        print(f"  {k:<28} {t * 1e3:9.2f} ms   {res[ref] / t:5.2f}x")


def networks():
    import timm
    import torchvision
    from timm.utils import reparameterize_model
    tv = randomise_bn(torchvision.models.resnet50())
    tm = randomise_bn(timm.create_model("repvgg_a0"))
    return [
        ("resnet50", str(ROOT / "stdlib" / "resnet.res"), tv, "torchvision", {}),
        ("repvgg_a0", str(ROOT / "stdlib" / "repvgg.res"), tm, "timm",
         {"timm reparameterize_model": reparameterize_model(copy.deepcopy(tm)).eval()}),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-onnx", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU thread(s), input {args.size}x{args.size}")
    batches = [int(b) for b in args.batches.split(",")]
    gen = torch.Generator().manual_seed(0)
    for name, path, ref_model, ref_name, extra in networks():
        sd = ref_model.state_dict()
        t0 = time.perf_counter()
        g = api.graph(path, name)
        g2, w2 = api.optimize(g, sd, level="2")
        t_opt = time.perf_counter() - t0
        from resdsl.backends.torch.build import to_fx
        m0 = to_fx(g, weights=sd).eval()
        m2 = to_fx(g2, weights=w2).eval()
        print(f"\n== {name}: -O0 {len(g.nodes)} ops, {g.num_params():,} params; -O2 {len(g2.nodes)} ops, "
              f"{g2.num_params():,} params (optimize: {t_opt:.2f} s)")
        models = {ref_name: ref_model, "resdsl -O0": m0, "resdsl -O2": m2, **extra}
        for b in batches:
            x = torch.randn(b, 3, args.size, args.size, generator=gen)
            check_same(models, x)
            per = 5 if b == 1 else 1
            res = interleaved({k: eager(m, x) for k, m in models.items()}, args.rounds, per)
            report(f"{name} eager, batch {b}", res, ref_name)
            print(f"  -O2 vs -O0: {res['resdsl -O0'] / res['resdsl -O2']:.2f}x")
        if not args.no_onnx:
            bench_onnx(name, path, sd, args, threads, batches, gen)


def bench_onnx(name, path, sd, args, threads, batches, gen):
    import numpy as np
    import onnxruntime as ort
    from resdsl.outputs import write_output
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sessions = {}
    with tempfile.TemporaryDirectory() as d:
        for lv in ("0", "2"):
            f = os.path.join(d, f"{name}_O{lv}.onnx")
            write_output(f, api.to_onnx(path, name, weights=sd, opt=lv).SerializeToString())
            sessions[f"onnxruntime -O{lv}"] = ort.InferenceSession(f, so, providers=["CPUExecutionProvider"])
            ops = {n.op_type for n in __import__("onnx").load(f).graph.node}
            print(f"  {os.path.basename(f)}: {os.path.getsize(f) / 1e6:.1f} MB, ops {sorted(ops)}")
        for b in batches:
            x = torch.randn(b, 3, args.size, args.size, generator=gen).numpy()
            outs = [s.run(None, {s.get_inputs()[0].name: x})[0] for s in sessions.values()]
            assert np.abs(outs[0] - outs[1]).max() <= 1e-4 * np.abs(outs[0]).max()
            fns = {k: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for k, s in sessions.items()}
            res = interleaved(fns, args.rounds, 5 if b == 1 else 1)
            report(f"{name} onnxruntime, batch {b}", res, "onnxruntime -O0")


if __name__ == "__main__":
    main()
