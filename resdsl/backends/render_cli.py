"""`resdsl render` and `resdsl summary`: the command-line side of the diagram and table backends."""
from __future__ import annotations

import argparse
import os
import sys

from ..diagnostics import ResdslError


def _depth(text: str):
    if text == "all":
        return "all"
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth: use 0, 1, 2, ... or all") from None
    if d < 0:
        raise argparse.ArgumentTypeError("depth must be 0 or more (or all)")
    return d


def _common(p):
    from ..cli import _shape
    p.add_argument("file", help="the .res file")
    p.add_argument("--network", "-n", help="network to use (needed when the file defines several)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a network parameter (a .res expression), e.g. --set classes=10")
    p.add_argument("--config", help="YAML file of parameter overrides")
    p.add_argument("--input-shape", type=_shape, default=None,
                   help="fix symbolic input axes, e.g. 1,3,224,224 (shapes and MACs become numbers)")


def register(sub) -> None:
    r = sub.add_parser("render", help="draw the network (svg, pdf, png, dot, tex)",
                       description="Draw a network as a paper figure: blocks collapse to boxes, repeats get a "
                                   "\u00d7n badge, skips go to the side, edges carry shapes.")
    _common(r)
    r.add_argument("--depth", "-d", type=_depth, default=None, metavar="N|all",
                   help="0: the network as one box; 1: its top-level statements (default); N: open blocks, "
                        "repeats and loops N levels deep; all: every op. With --width and no --depth, the "
                        "deepest depth that fits")
    r.add_argument("-o", "--output", required=True, help="output file: .svg, .pdf, .png, .dot or .tex (TikZ)")
    r.add_argument("--rankdir", choices=["TB", "LR"], default=None,
                   help="top to bottom or left to right (default TB; with --width, whichever fits)")
    r.add_argument("--width", default=None,
                   help="fit a column: single (252 pt), double (504 pt) or a width in points")
    r.add_argument("--style", choices=["block", "circuit"], default="block",
                   help="block: block chart (default); circuit: neural circuit diagram, one wire per axis "
                        "(see docs/render.md)")
    r.add_argument("--no-shapes", dest="shapes", action="store_false", help="leave the shapes off the edges")
    r.add_argument("--params", action="store_true", help="show parameter counts on the boxes")
    r.set_defaults(func=cmd_render)

    s = sub.add_parser("summary", help="table of output shapes, parameters and multiply-adds per block")
    _common(s)
    s.add_argument("--depth", "-d", type=_depth, default=1, metavar="N|all",
                   help="how deep to list blocks (default 1: top-level statements)")
    s.add_argument("--format", "-f", choices=["text", "markdown", "latex", "csv"], default="text")
    s.add_argument("-o", "--output", default=None, help="write to a file instead of stdout")
    s.set_defaults(func=cmd_summary)


def _graph(args):
    from ..api import graph
    return graph(args.file, args.network, config=args.config, sets=args.sets, input_shape=args.input_shape)


def cmd_render(args) -> int:
    from ..cli import write_atomic
    from .graphviz import FORMATS, render
    ext = os.path.splitext(args.output)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ResdslError("usage", f"cannot tell the format of {args.output!r} from its extension",
                          help="end the output name with .svg, .pdf, .png, .dot or .tex")
    g = _graph(args)
    if args.style == "circuit":  # same arguments, the other renderer (backends/circuit.py)
        from .circuit import render
    depth = "auto" if args.depth is None else (None if args.depth == "all" else args.depth)
    data, info = render(g, ext, depth=depth, rankdir=args.rankdir, width=args.width,
                        shapes=args.shapes, params=args.params)
    if info["warnings"]:
        print(f"graphviz: {info['warnings']}", file=sys.stderr)
    write_atomic(args.output, data)
    d = "all" if info["depth"] is None else info["depth"]
    print(f"wrote {args.output}: {g.name} at depth {d}, {info['rankdir']}")
    return 0


def cmd_summary(args) -> int:
    from .summary import format_summary
    g = _graph(args)
    text = format_summary(g, None if args.depth == "all" else args.depth, args.format)
    if args.output:
        from ..cli import write_atomic
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
