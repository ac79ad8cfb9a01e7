"""Render time and figure width: `resdsl render` against torchview on the same torchvision models.

    pip install torchview        # benchmark only; not a test dependency
    python benchmarks/render.py

Measures, in one run, after warm-up (interpreter start excluded):
  * resnet50 at depth 1 -> SVG and PDF (target: under 1 s for both, elaboration included);
  * resnet152 at depth all -> SVG (target: under 5 s);
  * torchview's draw_graph of torchvision's resnet50 (depth 1, and its default depth 3) and resnet152
    (every module) -> SVG and PDF through the same `dot`;
  * the widths of the drawings in points (target: resdsl's resnet50 at least 5x narrower than torchview's).
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESNET = str(ROOT / "stdlib" / "resnet.res")


def svg_size(data: bytes):
    m = re.search(rb'<svg width="([\d.]+)pt" height="([\d.]+)pt"', data)
    return float(m.group(1)), float(m.group(2))


def best(fn, repeat=3):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def ours(net, depth, formats):
    from resdsl.api import graph
    from resdsl.backends.diagram.block import render
    g = graph(RESNET, net)
    return [render(g, f, depth=depth)[0] for f in formats]


def theirs(model_fn, depth, formats):
    import torch
    from torchview import draw_graph
    with torch.device("meta"):
        m = model_fn()
    vg = draw_graph(m, input_size=(1, 3, 224, 224), depth=depth, device="meta").visual_graph
    return [vg.pipe(format=f) for f in formats]


def main() -> int:
    import torchvision
    try:
        import torchview  # noqa: F401
    except ImportError:
        print("torchview is not installed: pip install torchview")
        return 1
    ours("resnet18", 1, ["svg"])  # warm-up: imports, the dot binary's caches
    rows = []
    t50, (svg50, _pdf) = best(lambda: ours("resnet50", 1, ["svg", "pdf"]))
    t152, (svg152,) = best(lambda: ours("resnet152", None, ["svg"]), repeat=2)
    tv50, (tsvg50, _tpdf) = best(lambda: theirs(torchvision.models.resnet50, 1, ["svg", "pdf"]))
    tv50d, (tsvg50d, _) = best(lambda: theirs(torchvision.models.resnet50, 3, ["svg", "pdf"]))
    tv152, (tsvg152,) = best(lambda: theirs(torchvision.models.resnet152, 99, ["svg"]), repeat=2)
    w50, h50 = svg_size(svg50)
    w152, h152 = svg_size(svg152)
    rows.append(("resdsl resnet50 depth 1, svg+pdf", t50, w50, h50))
    rows.append(("torchview resnet50 depth 1, svg+pdf", tv50, *svg_size(tsvg50)))
    rows.append(("torchview resnet50 depth 3 (default), svg+pdf", tv50d, *svg_size(tsvg50d)))
    rows.append(("resdsl resnet152 depth all, svg", t152, w152, h152))
    rows.append(("torchview resnet152 all modules, svg", tv152, *svg_size(tsvg152)))
    print(f"{'drawing':48s} {'time s':>8s} {'width pt':>9s} {'height pt':>10s}")
    for name, t, w, h in rows:
        print(f"{name:48s} {t:8.3f} {w:9.0f} {h:10.0f}")
    tw1, tw3 = svg_size(tsvg50)[0], svg_size(tsvg50d)[0]
    print(f"resnet50 width ratio torchview/resdsl: depth 1 {tw1 / w50:.1f}x, torchview default depth "
          f"{tw3 / w50:.1f}x (target >= 5x)")
    print(f"resnet50 depth 1 svg+pdf {t50:.3f} s (target < 1 s); resnet152 depth all {t152:.3f} s "
          f"(target < 5 s); speed vs torchview: {tv50 / t50:.1f}x, {tv152 / t152:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
