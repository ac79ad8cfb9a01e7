"""resdsl's ONNX target against torch.onnx.export of the torchvision model, same weights.

For resnet50 (and vit_b_16 where the stdlib has it and torchvision's keys fit): node
count, file size and export time of both files, and onnxruntime CPU latency of both at
batch 1 and 8, measured in the same run (interleaved), printed with ratios
(resdsl / torch.onnx.export; lower is better for every row).

    python benchmarks/onnx_export.py [--nets resnet50,vit_b_16] [--runs 20] [--threads 0]

Export time: best of 3 warm runs, each from the .res text (parse, elaborate, check the
weights, lower, serialize) for resdsl, and from the nn.Module (trace, export, serialize)
for torch. torch.onnx.export uses the TorchScript exporter (dynamo=False) when onnxscript,
which the dynamo exporter needs, is not installed; the script says which it used.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision

import resdsl

ROOT = Path(__file__).resolve().parents[1]
NETS = {"resnet50": ("stdlib/resnet.res", torchvision.models.resnet50),
        "vit_b_16": ("stdlib/vit.res", torchvision.models.vit_b_16)}


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def torch_export(model, x) -> tuple[bytes, str]:
    try:
        import onnxscript  # noqa: F401
        dynamo = True
    except ImportError:
        dynamo = False
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), buf, dynamo=True, opset_version=18,
                              dynamic_shapes={"x": {0: torch.export.Dim("N")}}, input_names=["x"])
        else:
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=18, input_names=["x"],
                              output_names=["out"], dynamic_axes={"x": {0: "N"}, "out": {0: "N"}})
    return buf.getvalue(), ("dynamo" if dynamo else "TorchScript (dynamo=False)")


def best_of(fn, n=3):
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def count_nodes(data: bytes) -> tuple[int, int]:
    """(all nodes, nodes that compute: Identity and Constant left out)."""
    m = onnx.load_from_string(data)
    ops = [n.op_type for n in m.graph.node]
    return len(ops), sum(op not in ("Identity", "Constant") for op in ops)


def latency(sessions: dict, x: np.ndarray, runs: int) -> dict:
    """Median seconds per run for each session, runs interleaved so load hits both alike."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[k])
    times = {k: [] for k in sessions}
    keys = list(sessions)
    for i in range(runs):
        for k in keys if i % 2 == 0 else keys[::-1]:  # alternate who goes first
            t = time.perf_counter()
            sessions[k].run(None, feeds[k])
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(name: str, runs: int, threads: int) -> None:
    path, ctor = NETS[name]
    torch.manual_seed(0)
    tv = ctor().eval()
    randomise_bn(tv)
    sd = tv.state_dict()
    src = str(ROOT / path)
    try:
        resdsl.graph(src, name)
    except resdsl.ResdslError as e:
        print(f"{name}: not in the stdlib yet ({e.message})")
        return
    x = torch.randn(1, 3, 224, 224)

    def ours():
        return resdsl.to_onnx(src, name, weights=sd).SerializeToString()

    try:
        t_ours, ours_bytes = best_of(ours)
    except resdsl.ResdslError as e:
        print(f"{name}: torchvision's state_dict does not fit the stdlib network: {e.message[:300]}")
        return
    t_torch, (torch_bytes, how) = best_of(lambda: torch_export(tv, x))
    n_ours, c_ours = count_nodes(ours_bytes)
    n_torch, c_torch = count_nodes(torch_bytes)

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sessions = {"resdsl": ort.InferenceSession(ours_bytes, opts, providers=["CPUExecutionProvider"]),
                "torch": ort.InferenceSession(torch_bytes, opts, providers=["CPUExecutionProvider"])}
    with torch.no_grad():
        want = tv(x).numpy()
    for k, s in sessions.items():  # both files compute torchvision's numbers
        got = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
        err = float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))
        assert err < 1e-4, f"{k} file differs from torchvision by {err}"
    lat = {b: latency(sessions, np.random.default_rng(b).standard_normal((b, 3, 224, 224), np.float32),
                      runs if b == 1 else max(3, runs // 4)) for b in (1, 8)}

    print(f"\n== {name} (torch.onnx.export: {how}; onnxruntime {ort.__version__}, CPU, "
          f"{threads or 'default'} threads) ==")
    print(f"{'':28s}{'resdsl':>12s}{'torch.onnx':>12s}{'ratio':>8s}")

    def row(label, a, b, fmt):
        print(f"{label:28s}{fmt(a):>12s}{fmt(b):>12s}{a / b:8.2f}")

    row("nodes (all)", n_ours, n_torch, str)
    row("nodes (no Identity/Constant)", c_ours, c_torch, str)
    row("file size (MB)", len(ours_bytes) / 1e6, len(torch_bytes) / 1e6, lambda v: f"{v:.2f}")
    row("export time (s)", t_ours, t_torch, lambda v: f"{v:.3f}")
    for b in (1, 8):
        row(f"ort latency batch {b} (ms)", lat[b]["resdsl"] * 1e3, lat[b]["torch"] * 1e3, lambda v: f"{v:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", default="resnet50,vit_b_16")
    ap.add_argument("--runs", type=int, default=20, help="timed runs at batch 1 (batch 8: a quarter)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    args = ap.parse_args()
    for name in args.nets.split(","):
        bench(name.strip(), args.runs, args.threads)


if __name__ == "__main__":
    main()
