"""Stable text form of the IR (for golden tests and `resdsl ir`)."""
from __future__ import annotations

from .shapes import shape_str


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in sorted(v.items())) + "}"
    return str(v)


def print_graph(g) -> str:
    ins = ", ".join(f"%{v.name}: {shape_str(v.shape)}" for v in g.inputs)
    outs = ", ".join(shape_str(v.shape) for v in g.outputs)
    lines = [f"network {g.name}({ins}) -> ({outs}) {{"]
    for n in g.nodes:
        res = ", ".join(f"%{v.name}" for v in n.outputs)
        args = ", ".join(f"%{v.name}" for v in n.inputs)
        pub = n.public_attrs()
        attrs = {a.name: pub[a.name] for a in n.opdef.attrs if a.name in pub}
        astr = (" {" + ", ".join(f"{k}={_fmt(v)}" for k, v in attrs.items() if v is not None) + "}") if attrs else ""
        at = f" @{n.path}" if n.path else ""
        types = ", ".join(shape_str(v.shape) + ("" if v.dtype == "float32" else f" {v.dtype}")  # `[16] bool`
                          for v in n.outputs)
        lines.append(f"  {res} = {n.op}({args}){astr}{at} : {types}")
    rets = ", ".join(f"{name}=%{v.name}" for name, v in zip(g.output_names, g.outputs))
    lines.append(f"  return {rets}")
    lines.append("}")
    return "\n".join(lines) + "\n"
