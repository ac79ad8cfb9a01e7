"""create_model("resnet50", pretrained=True) from a warm cache against
torchvision.models.resnet50(weights="DEFAULT") from its warm cache, in the same run.

Nothing is downloaded: a temporary TORCH_HOME is filled with a checkpoint made here (torchvision's
resnet50, random weights) under the file name of the DEFAULT weights; torch.hub does not
re-hash a file already in its cache, so both sides load that file. Target: ratio <= 1.1,
outputs equal (max abs difference 0.0).

    python benchmarks/pretrained.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        os.environ["TORCH_HOME"] = home
        import torch
        import torchvision

        import resdsl
        weights = torchvision.models.ResNet50_Weights.DEFAULT
        ckpt = Path(home) / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
        ckpt.parent.mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet50().state_dict(), ckpt)

        def tv():
            return torchvision.models.resnet50(weights="DEFAULT")

        def rd():
            return resdsl.create_model("resnet50", pretrained=True)
        tv(), rd()  # imports, first elaboration
        t_tv, t_rd = [], []
        for _ in range(args.repeat):  # interleaved: a busy machine slows both alike
            t0 = time.perf_counter()
            a = tv()
            t_tv.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = rd()
            t_rd.append(time.perf_counter() - t0)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = (a.eval()(x) - b.eval()(x)).abs().max().item()
        mt, mr = statistics.median(t_tv), statistics.median(t_rd)
        print(f"torchvision resnet50(weights='DEFAULT'):       median {mt * 1e3:7.1f} ms  "
              f"(min {min(t_tv) * 1e3:.1f})")
        print(f"resdsl create_model('resnet50', pretrained=True): median {mr * 1e3:7.1f} ms  "
              f"(min {min(t_rd) * 1e3:.1f})")
        print(f"ratio {mr / mt:.2f} (target <= 1.1); outputs max abs diff {diff}")
        return 0 if mr / mt <= 1.1 and diff == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main())
