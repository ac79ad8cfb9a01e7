"""Render every stdlib network and example to SVG, with a markdown index (docs/gallery/index.md).

    python docs/gallery/build.py            # writes docs/gallery/*.svg and index.md
    python docs/gallery/build.py --check    # render everything, fail on any graphviz warning

Generic networks whose parameters have no defaults (``ResNet(block, layers)``) are
drawn through their variants. Output is deterministic: rerunning changes nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from resdsl.api import graph, load  # noqa: E402
from resdsl.backends.diagram.block import render  # noqa: E402

# figures for the README: (file, network, depth, output name)
FEATURED = [
    ("stdlib/resnet.res", "resnet50", 1, "resnet50_depth1.svg"),
    ("stdlib/resnet.res", "resnet18", 3, "resnet18_depth3.svg"),
    ("examples/loop_residual.res", None, 2, "loop_residual_depth2.svg"),
    # deeper figures, where frames, titles and skips meet (tests/test_figure_overlaps.py measures them)
    ("stdlib/resnet.res", "resnet50", 2, "resnet50_depth2.svg"),
    ("examples/transformer.res", None, 3, "transformer_depth3.svg"),
    ("stdlib/densenet.res", "densenet121", 2, "densenet121_depth2.svg"),
    ("stdlib/convnext.res", "convnext_tiny", 2, "convnext_tiny_depth2.svg"),
]

# neural circuit diagrams (`--style circuit`): (file, network, depth, output name under circuit/)
CIRCUIT = [
    ("examples/transformer.res", None, 2, "transformer_depth2.svg"),
    ("examples/transformer.res", None, 3, "transformer_depth3.svg"),
    ("stdlib/vit.res", "vit_b_16", 2, "vit_b_16_depth2.svg"),
    ("examples/unet.res", None, 1, "unet_depth1.svg"),
    ("stdlib/resmlp.res", "resmlp_12_224", 1, "resmlp_12_224_depth1.svg"),
    ("stdlib/convnext.res", "convnext_tiny", 2, "convnext_tiny_depth2.svg"),
]


HEADER = "| | file | network | ops | parameters |"


def row(path, net, name, ops, params) -> str:
    """One index row, led by an inline thumbnail of the figure (a link to it full size)."""
    thumb = f'[<img src="{name}" height="96" alt="{net}">]({name})'
    return f"| {thumb} | `{path}` | [{net}]({name}) | {ops} | {params:,} |"


def networks():
    for folder in ("stdlib", "examples"):
        for f in sorted((ROOT / folder).glob("*.res")):
            for net, ref in load(str(f)).networks.items():
                defn = getattr(ref, "defn", None)
                if defn is not None and any(p.default is None for p in defn.params):
                    continue
                yield f"{folder}/{f.name}", net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="render without writing; fail on warnings")
    ap.add_argument("--depth", type=int, default=1)
    args = ap.parse_args(argv)
    rows, failures = [], []
    for path, net in networks():
        try:
            g = graph(str(ROOT / path), net)
            data, info = render(g, "svg", depth=args.depth)
        except Exception as e:  # report every failure, not only the first
            failures.append(f"{path} {net}: {e}")
            continue
        if info["warnings"]:
            failures.append(f"{path} {net}: graphviz: {info['warnings']}")
        name = f"{Path(path).stem}-{net}.svg"
        if not args.check:
            (OUT / name).write_bytes(data)
        rows.append(row(path, net, name, len(g.nodes), g.num_params()))
    for path, net, depth, name in FEATURED:
        if not (ROOT / path).exists():
            continue
        g = graph(str(ROOT / path), net)
        data, info = render(g, "svg", depth=depth)
        if not args.check:
            (OUT / "featured").mkdir(exist_ok=True)
            (OUT / "featured" / name).write_bytes(data)
    from resdsl.backends.diagram.circuit import render as circuit_render
    for path, net, depth, name in CIRCUIT:
        g = graph(str(ROOT / path), net)
        data, info = circuit_render(g, "svg", depth=depth)
        if info["warnings"]:
            failures.append(f"{path} {net} (circuit): graphviz: {info['warnings']}")
        if not args.check:
            (OUT / "circuit").mkdir(exist_ok=True)
            (OUT / "circuit" / name).write_bytes(data)
    if not args.check:
        index = ["# Gallery", "",
                 f"Every stdlib network and example at depth {args.depth}, drawn by `resdsl render` "
                 "(rebuild with `python docs/gallery/build.py`).", "",
                 HEADER, "|:-:|---|---|--:|--:|", *rows, "",
                 "## Neural circuit diagrams", "",
                 "`resdsl render --style circuit` (see docs/render.md): one wire per axis, boxes on the axes "
                 "an op acts on.", "",
                 *[f"- [{(net or Path(path).stem)} at depth {depth}](circuit/{name})"
                   for path, net, depth, name in CIRCUIT], ""]
        (OUT / "index.md").write_text("\n".join(index))
    for f in failures:
        print("FAILED", f, file=sys.stderr)
    print(f"{len(rows)} networks rendered" + ("" if args.check else f" to {OUT}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
