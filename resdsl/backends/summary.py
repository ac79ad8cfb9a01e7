"""`resdsl summary`: per block output shape, parameters and multiply-adds, with totals.

Rows follow the author's structure (the same scope tree the diagrams use): depth 1
lists the network's top-level statements, deeper levels open blocks, repeats and
loops. Parameters count each tensor once (a shared loop's weights once), the way
``sum(p.numel() for p in module.parameters())`` does. Multiply-adds count what
``torch.utils.flop_counter`` counts (convolutions, linear maps, matmuls, attention;
flops = 2 x MACs); elementwise ops, norms and pooling count zero. With symbolic
input axes the MACs are polynomials in those axes (pass ``--input-shape`` for numbers).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..ir import shapes as S
from ..ir.graph import eval_form

STRUCTURAL = ("network", "block", "repeat", "loop")


# ------------------------------------------------------------------ per-op costs
def node_macs(n):
    """Multiply-accumulates of one IR node (int or symbolic Size): the `macs` rule of its op's record."""
    return n.opdef.node_macs(n)


TRAINING = " (training only)"  # a row or output the network computes in training mode only

def param_counts(g) -> dict:
    """id(node) -> parameters it introduces (each shared tensor counted at its first use)."""
    seen = set()
    out = {}
    for n in g.nodes:
        c = 0
        for local, spec in n.params.items():
            full = n.path if local == "" else f"{n.path}.{local}"
            if spec.kind == "param" and full not in seen:
                seen.add(full)
                c += math.prod(spec.shape)
        out[id(n)] = c
    return out


def is_structural(s) -> bool:
    return s.kind in STRUCTURAL or (s.kind == "group" and s.name != "group")


# ------------------------------------------------------------------ formatting
def si(x) -> str:
    """4091904 -> '4.09M'; a symbolic Size -> '81.9k*H*W'."""
    if isinstance(x, S.Size):
        parts = []
        for mono in sorted(x.terms, key=lambda k: (-len(k), k)):
            c = x.terms[mono]
            coef = si(float(c)) if c.denominator != 1 else si(int(c))
            parts.append(coef if not mono else (("" if coef == "1" else coef + "*") + "*".join(mono)))
        return " + ".join(parts) or "0"
    if isinstance(x, float) and not x.is_integer():
        if abs(x) < 1000:
            return f"{x:.3g}"
    x = int(round(x)) if isinstance(x, float) else x
    for unit, div in (("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}" if x / div < 1000 or unit == "G" else f"{x / div:.4g}{unit}"
    return str(x)


def shape_text(shape) -> str:
    return "[" + ", ".join(str(a.size) for a in shape) + "]"


# ------------------------------------------------------------------ rows
@dataclass
class Row:
    name: str
    kind: str
    level: int
    shape: str
    params: int
    macs: object
    leaf: bool
    children: list = field(default_factory=list)


def _scope_label(s) -> str:
    if s.kind == "block":
        return f"{s.path or s.name} ({s.info.get('block', s.name)})"
    if s.kind == "repeat":
        return f"{s.path or s.name} (repeat x{s.info.get('count', 0)})"
    if s.kind == "loop":
        return f"{s.path or s.name} (loop x{s.info.get('count', 0)}, shared)"
    return s.path or s.name


def summary_rows(g, depth: int | None = 1) -> tuple[list, dict]:
    """Flat list of rows (pre-order, with level) and the totals."""
    pc = param_counts(g)
    # the structural scope that holds each node, at the displayed depth
    children = {}   # id(scope or None) -> ordered list of entries (("scope", s) | ("node", n))
    seen = set()

    def struct_chain(scope):
        chain = [s for s in reversed(list(scope.ancestors())) if is_structural(s)]
        return chain  # root first

    for n in g.nodes:
        chain = struct_chain(n.scope)
        if depth is not None:
            chain = chain[:depth + 1]
        parent = None
        for s in chain:
            key = id(parent)
            if id(s) not in seen:
                seen.add(id(s))
                children.setdefault(key, []).append(("scope", s))
            parent = s
        leaf_open = depth is None or len(struct_chain(n.scope)) <= depth
        if leaf_open:
            children.setdefault(id(parent), []).append(("node", n))
        else:
            children.setdefault(id(parent), [])
    totals_by_scope = {}
    train = set(g.nodes) - set(eval_form(g).nodes)  # ops only the outputs marked `training` need
    eval_scopes = set()  # scopes with an op that runs in eval mode too
    for n in g.nodes:
        for s in struct_chain(n.scope):
            if n not in train:
                eval_scopes.add(id(s))
            t = totals_by_scope.setdefault(id(s), [0, 0, None])
            t[0] += pc[id(n)]
            t[1] = S.add(t[1], node_macs(n))
            t[2] = n.outputs[0].shape if n.outputs else t[2]
    rows = []

    def visit(entry, level):
        kind, obj = entry
        if kind == "node":
            n = obj
            name = (n.path or n.op) + (TRAINING if n in train else "")
            rows.append(Row(name, n.op, level, shape_text(n.outputs[0].shape) if n.outputs else "",
                            pc[id(n)], node_macs(n), True))
            return
        s = obj
        t = totals_by_scope.get(id(s), [0, 0, None])
        out = s.info.get("out")
        shape = out.shape if out is not None and hasattr(out, "shape") else t[2]
        kids = children.get(id(s), [])
        label = _scope_label(s) + ("" if id(s) in eval_scopes else TRAINING)
        rows.append(Row(label, s.kind, level, shape_text(shape) if shape else "", t[0], t[1],
                        not kids))
        for k in kids:
            visit(k, level + 1)

    root_entries = children.get(id(None), [])
    # skip the network row itself: it is the totals line
    for kind, s in root_entries:
        for k in children.get(id(s), []):
            visit(k, 0)
    # MACs of one inference: the eval form (rows marked `training only` are not run there)
    total = {"params": g.num_params(), "macs": _total_macs(eval_form(g)),
             "outputs": ", ".join(shape_text(v.shape) + (TRAINING if i in g.train_only else "")
                                  for i, v in enumerate(g.outputs)),
             "inputs": ", ".join(f"{v.name}: {shape_text(v.shape)}" for v in g.inputs)}
    return rows, total


def _total_macs(g):
    t = 0
    for n in g.nodes:
        t = S.add(t, node_macs(n))
    return t


# ------------------------------------------------------------------ escaping, per format
# A quoted name (`as "a`|<b>"`) may hold any printable character but `"` and `\\`; every format that
# another program interprets gets it escaped for that program.
_MD_PUNCT = set("\\`*_<>|&~!()$")


def md_text(s: str) -> str:
    """Plain markdown text inside a line: the punctuation a CommonMark or GFM-table parser could
    read as markup there (emphasis, code, HTML, entities, links: `(` is escaped, so `[...]` never
    becomes one; `$` for math) is backslash-escaped; `|` too, so a cell never splits."""
    return "".join("\\" + c if c in _MD_PUNCT else c for c in str(s))


def md_code(s: str) -> str:
    """A markdown code span holding `s` literally: its fence is one backtick longer than the
    longest run of backticks inside, padded with a space when `s` starts or ends with a backtick
    or a space; `|` is escaped for GFM tables (the table parser splits cells before code spans)."""
    s = str(s)
    run = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (run + 1)
    pad = " " if s[:1] in ("`", " ") or s[-1:] in ("`", " ") else ""
    return fence + pad + s.replace("|", "\\|") + pad + fence


CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(s: str) -> str:
    """A text cell a spreadsheet will not run: a value starting with `=`, `+`, `-`, `@`, tab or
    carriage return gets a leading `'` (OWASP, CSV injection), which spreadsheets show as text."""
    s = str(s)
    return "'" + s if s.startswith(CSV_FORMULA) else s


def summary_html(g, rows, body, foot, total) -> str:
    """The table as HTML (Jupyter's `_repr_html_`): every text escaped, indentation by padding."""
    import html

    def e(s):
        return html.escape(str(s), quote=True)
    head = "".join(f"<th>{e(c)}</th>" for c in ("name", "output shape", "params", "MACs"))
    trs = []
    for r, cells in zip(rows, body):
        tds = [f'<td style="text-align:left;padding-left:{1.2 * r.level:.1f}em"><code>{e(r.name)}</code></td>',
               f"<td>{e(cells[1])}</td>"] + [f'<td style="text-align:right">{e(c)}</td>' for c in cells[2:]]
        trs.append("<tr>" + "".join(tds) + "</tr>")
    trs.append("<tr><td><b>total</b></td>" + f"<td>{e(foot[1])}</td>"
               + "".join(f'<td style="text-align:right"><b>{e(c)}</b></td>' for c in foot[2:]) + "</tr>")
    return (f"<table><caption><b>{e(g.name)}</b> ({e(total['inputs'])})</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(trs)}</tbody></table>\n")


# ------------------------------------------------------------------ output formats
def _macs_text(m, exact=False):
    if isinstance(m, S.Size):
        return si(m)
    return str(m) if exact else si(m)


def buffers_note(g) -> str:
    """`buffers (not parameters): relative_position_index [2401] int64, ...`: the constant tensors
    (`buffer`) of the network, which the params column does not count; "" when there are none."""
    seen, parts = set(), []
    for n in g.nodes:
        if n.op == "buffer" and n.path not in seen:
            seen.add(n.path)
            keep = "" if n.attrs["persistent"] else ", not in the state_dict"
            parts.append(f"{n.path} [{', '.join(map(str, n.attrs['_shape']))}] {n.attrs['_dtype']}{keep}")
    if not parts:
        return ""
    shown = parts if len(parts) <= 6 else parts[:5] + [f"... ({len(parts) - 5} more)"]
    return f"buffers (not parameters, {len(parts)}): " + "; ".join(shown)


def format_summary(g, depth: int | None = 1, fmt: str = "text") -> str:
    rows, total = summary_rows(g, depth)
    if fmt == "csv":
        import csv
        import io
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["level", "name", "kind", "output_shape", "params", "macs"])
        for r in rows:
            w.writerow([r.level, csv_cell(r.name), r.kind, csv_cell(r.shape), r.params, _macs_text(r.macs, True)])
        w.writerow(["", "total", "network", csv_cell(total["outputs"]), total["params"],
                    _macs_text(total["macs"], True)])
        return buf.getvalue()
    head = ["name", "output shape", "params", "MACs"]
    body = [[("  " * r.level if fmt == "text" else "") + r.name, r.shape, f"{r.params:,}", _macs_text(r.macs)]
            for r in rows]
    foot = ["total", total["outputs"], f"{total['params']:,}", _macs_text(total["macs"])]
    if fmt == "markdown":
        def md(cells):
            return "| " + " | ".join(cells) + " |"
        lines = [f"**{md_text(g.name)}** ({md_text(total['inputs'])})", "", md(head), "|---|---|--:|--:|"]
        for r, cells in zip(rows, body):
            cells = [md_text(c) for c in cells]
            cells[0] = "&nbsp;" * (2 * r.level) + md_code(r.name)
            lines.append(md(cells))
        lines.append(md(["**total**", md_text(foot[1]), f"**{md_text(foot[2])}**", f"**{md_text(foot[3])}**"]))
        if buffers_note(g):
            lines += ["", md_text(buffers_note(g))]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        return summary_html(g, rows, body, foot, total)
    if fmt == "latex":
        def tex(s):
            for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("$", "\\$"), ("#", "\\#"),
                         ("_", "\\_"), ("{", "\\{"), ("}", "\\}"), ("~", "\\textasciitilde{}"),
                         ("^", "\\textasciicircum{}"), ("<", "\\textless{}"), (">", "\\textgreater{}"),
                         ("|", "\\textbar{}")):
                s = s.replace(a, b)
            return s
        lines = ["% resdsl summary of " + tex(g.name), "\\begin{tabular}{llrr}", "\\hline",
                 " & ".join(["name", "output shape", "params", "MACs"]) + " \\\\", "\\hline"]
        for r, cells in zip(rows, body):
            name = "\\hspace{%.1fem}" % (r.level * 1.0) + tex(r.name) if r.level else tex(r.name)
            lines.append(" & ".join([name, tex(r.shape), tex(cells[2]), tex(cells[3])]) + " \\\\")
        lines += ["\\hline", " & ".join(tex(c) for c in foot) + " \\\\", "\\hline", "\\end{tabular}"]
        return "\n".join(lines) + "\n"
    # text
    table = [head] + body + [foot]
    widths = [max(len(r[i]) for r in table) for i in range(4)]

    def line(cells):
        return "  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()
    rule = "-" * (sum(widths) + 6)
    out = [f"{g.name}({total['inputs']})", line(head), rule] + [line(b) for b in body] + [rule, line(foot)]
    note = buffers_note(g)
    if note:
        out.append(note)
    if any(isinstance(r.macs, S.Size) for r in rows) or isinstance(total["macs"], S.Size):
        out.append("MACs are polynomials in the symbolic input axes; pass --input-shape for numbers.")
    return "\n".join(out) + "\n"
