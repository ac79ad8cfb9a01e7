"""IR -> architecture diagram (DOT via the `graphviz` package; SVG, PDF, PNG by the `dot` binary; TikZ).

The diagram follows the author's structure, not a trace:

* ``depth``: 0 draws the network as one box, 1 its top-level statements, N opens
  blocks, repeats and loops N levels deep, ``None`` ("all") draws every primitive op.
  Residual, parallel and shortcut regions are always drawn open (their skip edges
  are the point of the figure); blocks, repeats, loops and named groups are levels.
* A collapsed ``repeat n`` is one box with a ``×n`` badge; an open repeat folds runs
  of alike iterations (same ops, attributes and shapes) into one with a ``×k`` badge;
  a shared ``loop n`` is one box (or one open iteration) with a loop arrow and
  ``×n, shared``. At depth ``all`` nothing is folded: op nodes are the fx graph's calls.
* The main path (the longest chain from input to output) keeps one x coordinate
  (graphviz ``group``); residual skips are side edges with class ``skip``; the merge
  op is a small node at the join; parallel branches sit side by side.
* Edges carry shapes in the ``.res`` axis names (``N×256×H/4×W/4``) where the
  shape changes; norms, linear maps and reductions say which axes they act on and
  which they broadcast over (``ln[D] over N,L``).
* Node ids are the dotted ``.res`` paths (unnamed ops: ``layer1.0.relu``, ``relu_1``);
  SVG classes mark kinds (``class="node conv"``, ``class="edge skip"``).
* Output is deterministic: the same graph gives byte-identical DOT and SVG.

This module is the entry point: it chooses depth, direction and scale, runs `dot` and writes
the output formats. The view is built in view, its DOT emitted in dot, the
palette and label text live in labels and the TikZ output in tikz; their
public names are importable from here.
"""
from __future__ import annotations

import shutil
import subprocess

from ...diagnostics import ResdslError
from .dot import to_dot
from .page import VENUES, WIDTHS, parse_page, parse_width  # noqa: F401
from .labels import (  # noqa: F401
    BADGE,
    FONT,
    GREY,
    PALETTE,
    loop_call,
    axes_note,
    block_call,
    child_blocks,
    family,
    op_text,
    repeat_call,
    shape_label,
)
from .tikz import json_to_tikz, tex_escape, tikz_document  # noqa: F401
from .view import Cluster, Item, View  # noqa: F401

FORMATS = ("svg", "pdf", "png", "dot", "tex")
MIN_SCALE = 0.7          # below this the 10 pt labels get smaller than 7 pt: unreadable in print
PAGE_HEIGHT = 650.0      # text height of a journal page, for choosing a depth that fits
FRAME = 2 * (0.04 + 0.05) * 72.0  # pt that graphviz's pad and margin (to_dot) add across a drawing


# ------------------------------------------------------------------ running dot
def dot_binary() -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise ResdslError("usage", "the graphviz `dot` program is not installed",
                          help="install graphviz (apt-get install graphviz, brew install graphviz), "
                               "or write the .dot file with -o out.dot")
    return exe


def run_dot(source: str, fmt: str, extra=()) -> tuple[bytes, str]:
    """(output bytes, warnings) of `dot -T<fmt>` on `source`."""
    p = subprocess.run([dot_binary(), f"-T{fmt}", *extra], input=source.encode(), capture_output=True)
    if p.returncode < 0 and "-Gsplines=line" not in extra:
        # dot killed by a signal: graphviz's spline router segfaults on some large clustered
        # graphs (a deep U-Net at full depth); the same layout with straight edges does not crash
        p = subprocess.run([dot_binary(), f"-T{fmt}", *extra, "-Gsplines=line"], input=source.encode(),
                           capture_output=True)
    err = p.stderr.decode(errors="replace").strip()
    if p.returncode != 0:
        raise ResdslError("render", f"graphviz failed: {err or p.returncode}",
                          help="report this with the .dot file (-o out.dot)")
    return p.stdout, err


def layout_size(source: str) -> tuple[float, float]:
    """Width and height in points of the laid-out drawing."""
    out, _ = run_dot(source, "plain")
    first = out.split(b"\n", 1)[0].split()
    return float(first[2]) * 72.0, float(first[3]) * 72.0


def plan(g, depth="auto", rankdir=None, width=None, shapes=True, params=False, height=None):
    """Choose depth, rankdir and scale; returns (dot source, chosen depth, rankdir, (w, h) in pt).

    `width` and `height` are those of page.parse_page (points, single, double, a venue). `depth`
    "auto": the deepest of 3, 2, 1, 0 that fits the page, 1 without a width. `rankdir` None: TB, or
    LR when that fits and TB does not. A drawing is shrunk to fit, to no less than MIN_SCALE. With
    a height (given, or a venue's text height) the height is a limit like the width; without one,
    an automatic depth also prefers drawings no taller than a page (PAGE_HEIGHT)."""
    page = parse_page(width, height)
    # the drawing gets graphviz's pad and margin around it (unscaled) in SVG, PDF and PNG
    target, tall = ((v - FRAME) if v is not None else None for v in (page.width, page.height))
    if any(v is not None and v <= 0 for v in (target, tall)):
        raise ResdslError("usage", f"{page.describe()} leaves no room for a drawing",
                          help=f"give at least {FRAME + 1:.0f} pt")
    auto = depth == "auto"
    fitting = target is not None or tall is not None
    depths = ([3, 2, 1, 0] if fitting else [1]) if auto else [depth]
    dirs = [rankdir] if rankdir else ["TB", "LR"]
    if not fitting:
        src = to_dot(g, depths[0], dirs[0], shapes, params)
        return src, depths[0], dirs[0], None
    tried = []
    for dp in depths:
        for rd in dirs:
            src = to_dot(g, dp, rd, shapes, params)
            w, h = layout_size(src)
            scale = min(1.0, target / w if target and w else 1.0, tall / h if tall and h else 1.0)
            tried.append((dp, rd, w, h, scale))
            if scale < MIN_SCALE or (auto and tall is None and h * scale > PAGE_HEIGHT and dp != depths[-1]):
                continue
            if scale < 1.0:
                src = to_dot(g, dp, rd, shapes, params, size_in=((target or w) / 72.0, tall / 72.0 if tall else 1000))
            return src, dp, rd, (w * scale + FRAME, h * scale + FRAME)
    dp, rd, w, h, scale = max(tried, key=lambda t: t[4])
    dname = "all" if dp is None else dp
    need = []
    if target and w * MIN_SCALE > target:
        need.append(f"{w:.0f} pt wide")
    if tall and h * MIN_SCALE > tall:
        need.append(f"{h:.0f} pt tall")
    raise ResdslError("render", f"the diagram of `{g.name}` cannot fit {page.describe()}: at depth {dname}, {rd}, "
                                f"it is {' and '.join(need) or f'{w:.0f} x {h:.0f} pt'}, and shrinking it below "
                                f"{MIN_SCALE:.0%} makes its labels unreadable",
                      help="use a smaller --depth, the other --rankdir, --no-shapes, a wider --width (e.g. "
                           "cvpr-text) or a larger --height")


def render(g, fmt: str, depth="auto", rankdir=None, width=None, shapes=True, params=False,
           height=None) -> tuple[bytes, dict]:
    """Render to `fmt` (svg, pdf, png, dot, tex). Returns (bytes, info) with info: depth, rankdir, warnings,
    and with a page to fit, size (w, h) in points."""
    if fmt not in FORMATS:
        raise ResdslError("usage", f"unknown output format .{fmt}", help="use .svg, .pdf, .png, .dot or .tex")
    src, dp, rd, size = plan(g, depth, rankdir, width, shapes, params, height)
    info = {"depth": dp, "rankdir": rd, "warnings": "", "size": size}
    if fmt == "dot":
        return src.encode(), info
    if fmt == "tex":
        out, warn = run_dot(src, "json")
        info["warnings"] = warn
        return json_to_tikz(out.decode(), g.name).encode(), info
    extra = ()
    if fmt == "png":  # 300 dpi for print, less for drawings too large for a bitmap
        w, h = layout_size(src)
        extra = (f"-Gdpi={max(24, min(300, int(30000 * 72 / max(w, h, 1.0))))}",)
    out, warn = run_dot(src, fmt, extra)
    info["warnings"] = warn
    if fmt == "svg":
        out = clean_svg(out)
    elif fmt == "pdf":
        out = pdf_date(out)
    return out, info


def pdf_date(data: bytes) -> bytes:
    """Replace the PDF's creation/modification date (cairo writes the current time) by
    SOURCE_DATE_EPOCH, or 1970-01-01 when it is not set: same input, same bytes.
    The date keeps its length, so the PDF's cross-reference offsets stay right."""
    import os
    import re
    import time
    try:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch)).encode()
    except (ValueError, OverflowError, OSError):
        stamp = b"19700101000000"
    if len(stamp) != 14:  # a year past 9999: keep the length
        stamp = b"19700101000000"
    return re.sub(rb"/(CreationDate|ModDate) \(D:\d{14}", lambda m: b"/" + m.group(1) + b" (D:" + stamp, data)


def clean_svg(data: bytes) -> bytes:
    """Drop graphviz's version comment so the file depends on the input only."""
    import re
    return re.sub(rb"<!-- Generated by graphviz.*?-->\n", b"", data, count=1, flags=re.S)
