"""Throughput and memory on a GPU: resdsl's models against torchvision's, in the same run.

    python benchmarks/gpu.py                          # resnet50, vit_b_16, convnext_tiny at batch 256
    python benchmarks/gpu.py --models resnet50 --batch 128 --iters 50 --json gpu.json
    python benchmarks/gpu.py --smoke                  # CPU check of the script: batch 2, 1 step, no compile

For each network three implementations: torchvision's model (the reference), `resdsl.build()`
and the standalone file of `resdsl compile --target torch` (imported from a temporary folder).
Each runs eager and under `torch.compile`, with bfloat16 autocast and channels_last inputs:
inference (no_grad forward) and training (forward, cross-entropy, backward, SGD step) in
images per second, the median of --iters timed steps after --warmup untimed ones (the compile
happens there). Ratios are against torchvision measured in the same run and mode.

Memory (CUDA only): the peak of `torch.cuda.max_memory_allocated` over one training step of
`resdsl.build(..., checkpoint="sqrt")` against the same model without checkpointing.
A benchmark, never a test (the tests run --smoke): it prints numbers and ratios.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import resdsl

MODELS = ["resnet50", "vit_b_16", "convnext_tiny"]
FIXED_SIZE = {"vit_b_16": 224}  # ViT's position embeddings fix its input size
IMPLS = ["torchvision", "resdsl.build", "standalone"]


def make(impl: str, name: str, folder: Path):
    if impl == "torchvision":
        import torchvision
        return getattr(torchvision.models, name)()
    if impl == "resdsl.build":
        return resdsl.build(name, seed=0)
    path = folder / f"{name}_standalone.py"
    path.write_text(resdsl.to_python(name))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)(seed=0)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step, batch: int, warmup: int, iters: int, device) -> float:
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def measure(model, args, device, size: int, compiled: bool):
    """(inference img/s, training img/s) of `model` under bf16 autocast, channels_last."""
    model = model.to(device, memory_format=torch.channels_last)
    fn = torch.compile(model) if compiled else model
    x = torch.randn(args.batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def infer():
        with torch.no_grad(), amp:
            fn(x)

    def train():
        with amp:
            loss = F.cross_entropy(fn(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.eval()
    inference = images_per_second(infer, args.batch, args.warmup, args.iters, device)
    model.train()
    training = images_per_second(train, args.batch, args.warmup, args.iters, device)
    return inference, training


def peak_memory(name, checkpoint, args, device, size: int) -> float:
    """MiB: CUDA peak over one training step, above what the model and its optimizer hold."""
    model = resdsl.build(name, seed=0, checkpoint=checkpoint).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    for _ in range(2):  # the second step: the momentum buffers exist
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    del model, opt, x, y, loss
    torch.cuda.empty_cache()
    return peak / 2 ** 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224, help="image size (ViT keeps 224)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    ap.add_argument("--smoke", action="store_true",
                    help="check the script on any device: batch 2, 64x64 images, 1 warm-up and 1 timed step, eager")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batch, args.size, args.iters, args.warmup, args.no_compile = 2, 64, 1, 1, True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{what}, torch {torch.__version__}, batch {args.batch}, bf16 autocast, channels_last, "
          f"median of {args.iters} steps after {args.warmup}")
    modes = ["eager"] + ([] if args.no_compile else ["compile"])
    results = []
    print(f"{'network':<14} {'implementation':<14} {'mode':<8} {'infer img/s':>12} {'x tv':>6} "
          f"{'train img/s':>12} {'x tv':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            size = FIXED_SIZE.get(name, args.size)
            for mode in modes:
                ref = None
                for impl in IMPLS:
                    torch.manual_seed(0)
                    model = make(impl, name, Path(tmp))
                    inf, tr = measure(model, args, device, size, mode == "compile")
                    del model
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    ref = ref or (inf, tr)
                    row = {"network": name, "implementation": impl, "mode": mode, "inference": inf,
                           "training": tr, "inference_ratio": inf / ref[0], "training_ratio": tr / ref[1]}
                    results.append(row)
                    print(f"{name:<14} {impl:<14} {mode:<8} {inf:>12.1f} {inf / ref[0]:>6.2f} "
                          f"{tr:>12.1f} {tr / ref[1]:>6.2f}", flush=True)
    memory = []
    if device.type == "cuda":
        print(f"\npeak memory of a training step (CUDA, batch {args.batch}, above the model and optimizer)")
        for name in args.models.split(","):
            size = FIXED_SIZE.get(name, args.size)
            none, sqrt = (peak_memory(name, c, args, device, size) for c in ("none", "sqrt"))
            memory.append({"network": name, "none_mib": none, "sqrt_mib": sqrt, "ratio": sqrt / none})
            print(f"{name:<14} checkpoint=none {none:>9.0f} MiB   sqrt {sqrt:>9.0f} MiB   x none {sqrt / none:.2f}")
    else:
        print("\npeak memory: CUDA only (torch.cuda.max_memory_allocated); skipped on the CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": what, "torch": torch.__version__, "batch": args.batch, "throughput": results,
                       "memory": memory}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
