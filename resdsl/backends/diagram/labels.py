"""Words and colours of the block diagram: the palette of the op families, and the text of every
label (`Bottleneck(planes=128, stride=2,1,1,1)` for a block, a repeat or a loop). An op's family,
its label (`3×3 conv, 64, /2`) and the axes it acts on are facts of its record in the op table
(resdsl/ir/ops/); :func:`family`, :func:`op_text` and :func:`axes_note` read them. Used by the
DOT emitter and by the circuit renderer."""
from __future__ import annotations

import html

from ...ir.ops import OPS

FONT = "Helvetica,Arial,sans-serif"

# op family -> (fill, stroke); the SVG class of a node is its family (and the op name)
PALETTE = {
    "conv": ("#dbe8f7", "#3b6ea8"),
    "linear": ("#e8def4", "#6a4c9c"),
    "norm": ("#fcf0c8", "#a8841c"),
    "act": ("#dcefdc", "#3d8b3d"),
    "pool": ("#fde3cf", "#c0652a"),
    "merge": ("#ffffff", "#444444"),
    "layout": ("#eeeeee", "#777777"),
    "stochastic": ("#f8dde6", "#a8436b"),
    "scale": ("#f2f2f2", "#666666"),
    "gate": ("#fff4d6", "#b5651d"),  # skip_gate, route, vq: computation chosen per sample
    "recurrent": ("#e0f2f1", "#00796b"),  # lif, convlstm, reservoir: state across time steps
    "block": ("#f3f5f8", "#34495e"),
    "io": ("#ffffff", "#ffffff"),
}
BADGE = "#b03a2e"
GREY = "#555555"


def family(op: str) -> str:
    """The op's display family (its record's `family`): a key of PALETTE."""
    od = OPS.get(op)
    return od.family if od is not None and od.family else "layout"


def shape_label(shape) -> str:
    """`N×256×H/4×W/4`: the sizes in the author's axis names."""
    return "×".join(str(a.size) for a in shape)


def sizes_of(shape):
    return tuple(a.size for a in shape)


def html_text(s) -> str:
    return html.escape(str(s), quote=True)


def _axname(a) -> str:
    return a.name if a.name else str(a.size)


# ------------------------------------------------------------------ op labels
def op_text(n) -> str:
    """Paper-style one-line description: `3×3 conv, 64, /2` (the label of the op's record)."""
    label = n.opdef.label
    return label(n) if label is not None else n.op


def axes_note(n) -> str:
    """`[D] over N,L`: the axes an op works on, and those it broadcasts over (for the ops whose
    record asks for the note; the axes are the record's acted axes)."""
    when = n.opdef.axes_note
    if not n.inputs or not when:
        return ""
    x = n.inputs[0].shape
    r = len(x)
    on = n.opdef.axes(n, r)
    if not on:
        return ""
    over = [i for i in range(r) if i not in on]
    if when == "if_broadcast" and over == [0]:
        return ""  # a plain [N, features] map: nothing to say
    head = ",".join(_axname(x[i]) for i in on)
    return f"[{head}]" + (" over " + ",".join(_axname(x[i]) for i in over) if over else "")


_LIST_SHOWN = 8  # a block argument's list longer than this is shown by its ends


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        if len(v) > _LIST_SHOWN:  # a table of 196 indices: its ends and its length, not a title
            # graphviz cannot lay out (labels stop at 16,384 characters)
            head = ", ".join(_arg_text(x) for x in v[:3])
            return f"[{head}, …, {_arg_text(v[-1])}] ({len(v)})"
        return "[" + ", ".join(_arg_text(x) for x in v) + "]"
    if isinstance(v, (int, str)):
        return str(v)
    return ""


def block_call(scope) -> str:
    """`Bottleneck(planes=128, stride=2)`: the block and its non-default arguments."""
    args = scope.info.get("args") or {}
    defaults = scope.info.get("defaults") or {}
    parts = []
    for k, v in args.items():
        t = _arg_text(v)
        if not t or (k in defaults and _arg_text(defaults[k]) == t):
            continue
        parts.append(f"{k}={t}")
    return f"{scope.info.get('block', scope.name)}({', '.join(parts)})"


def _runs(values) -> str:
    """2,1×3 or 2,1×22: the per-iteration values of one argument, each run of equal values as
    value×count (one notation whatever the length)."""
    out = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return ",".join(v if c == 1 else f"{v}×{c}" for v, c in out)


def child_blocks(scope) -> list:
    """The block instances a repeat or group consists of (iteration wrappers looked through), or []."""
    blocks = []
    for c in scope.children:
        inner = c.children if c.kind == "iteration" else [c]
        if len(inner) != 1 or inner[0].kind != "block":
            return []
        blocks.append(inner[0])
    return blocks


def repeat_call(scope) -> str:
    """What a repeat repeats: `Bottleneck(planes=128, stride=2,1,1,1)` or ''."""
    blocks = child_blocks(scope)
    if not blocks or len({b.info.get("block") for b in blocks}) != 1:
        return ""
    keys = list((blocks[0].info.get("args") or {}).keys())
    defaults = blocks[0].info.get("defaults") or {}
    parts = []
    for k in keys:
        vals = [_arg_text((b.info.get("args") or {}).get(k)) for b in blocks]
        if not all(vals):
            continue
        if len(set(vals)) == 1:
            if k in defaults and _arg_text(defaults[k]) == vals[0]:
                continue
            parts.append(f"{k}={vals[0]}")
        else:
            parts.append(f"{k}={_runs(vals)}")
    return f"{blocks[0].info.get('block')}({', '.join(parts)})"


def loop_call(s) -> str:
    inner = [c for c in s.children[0].children] if s.children else []
    if len(inner) == 1 and inner[0].kind == "block":
        return block_call(inner[0])
    return "loop"
