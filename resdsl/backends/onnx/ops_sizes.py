"""ONNX lowerings of the ops whose sizes are read at run time (ir/runsizes.py): reshape,
rearrange and split with symbolic sizes, unsqueeze, squeeze, pad_to_multiple, crop.

A symbolic size is computed from ``Shape`` slices of the tensors that have it (``Shape(x,
start=j, end=j+1)``, then ``Mul``/``Div``/``Add`` on int64), and a shape is a ``Concat`` of
such pieces and constants, so one exported model runs at every input size."""
from __future__ import annotations

from ...ir import runsizes as RS
from ...ir import shapes as S
from .builder import lowering


class Sizes:
    """Run-time sizes of node `n` as 1-element int64 tensors, one `Shape` per axis read."""

    def __init__(self, b, n, ins):
        self.b, self.n, self.ins = b, n, ins
        self.dims = RS.dims_of([v.shape for v in n.inputs])
        self.cache = {}

    def render(self, e) -> str:
        b = self.b
        if isinstance(e, int):
            return b.ints([e], "size")
        if e in self.cache:
            return self.cache[e]
        if e[0] == "dim":
            out = b.op("Shape", [self.ins[e[1]]], start=e[2], end=e[2] + 1)
        elif e[0] == "mul":
            out = b.op("Mul", [self.render(e[1]), self.render(e[2])])
        elif e[0] == "add":
            out = b.op("Add", [self.render(e[1]), self.render(e[2])])
        elif e[0] == "div":
            out = b.op("Div", [self.render(e[1]), b.ints([e[2]], "factor")])
        else:  # ceil to a multiple of m: (a + m - 1) / m * m
            _, a, m = e
            up = b.op("Div", [b.op("Add", [self.render(a), b.ints([m - 1], "factor")]), b.ints([m], "factor")])
            out = b.op("Mul", [up, b.ints([m], "factor")])
        self.cache[e] = out
        return out

    def get(self, s):
        e = RS.plan(s, self.dims)
        return None if e is None else self.render(e)

    def pieces(self, sizes, slack: int = 1) -> list:
        """1-D int64 pieces of a shape: runs of constants, run-time sizes, -1 for the one left out."""
        sizes = list(sizes)
        plans = [s if isinstance(s, int) else RS.plan(s, self.dims) for s in sizes]
        missing = [i for i, e in enumerate(plans) if e is None]
        if not missing and slack:
            sym = [i for i, s in enumerate(sizes) if not isinstance(s, int)]
            missing = sym[-1:]
        out, run = [], []
        for i, e in enumerate(plans):
            if i in missing or isinstance(e, int):
                run.append(-1 if i in missing else e)
                continue
            if run:
                out.append(self.b.ints(run))
                run = []
            out.append(self.render(e))
        if run:
            out.append(self.b.ints(run))
        return out

    def concat(self, pieces) -> str:
        return pieces[0] if len(pieces) == 1 else self.b.op("Concat", pieces, axis=0)


@lowering("reshape")
def _reshape(b, n, ins):
    sz = Sizes(b, n, ins)
    shape = sz.concat(sz.pieces([ax.size for ax in n.outputs[0].shape]))
    return b.final("Reshape", [ins[0], shape], n)


@lowering("rearrange")
def _rearrange(b, n, ins):
    x = ins[0]
    sz = Sizes(b, n, ins)
    steps = list(n.attrs["_steps"])
    if not steps:
        return [x]
    rank = len(n.inputs[0].shape)
    cur = [ax.size for ax in n.inputs[0].shape]  # the sizes of `x` as the steps go
    for si, step in enumerate(steps):
        out = [b.out_name(n.outputs[0])] if si == len(steps) - 1 else 1
        kind = step[0]
        if kind == "permute":
            x = b.emit("Transpose", [x], out, perm=list(step[1]))[0]
            cur = [cur[i] for i in step[1]]
        elif kind in ("squeeze", "unsqueeze"):
            x = b.emit(kind.capitalize(), [x, b.ints([step[1]], "axes")], out)[0]
            rank += 1 if kind == "unsqueeze" else -1
            cur = cur[:step[1]] + [1] + cur[step[1]:] if kind == "unsqueeze" else cur[:step[1]] + cur[step[1] + 1:]
        else:
            if kind == "unflatten":
                new = cur[:step[1]] + list(step[2]) + cur[step[1] + 1:]
            else:
                prod = 1
                for v in cur[step[1]:step[2] + 1]:
                    prod = S.mul(prod, v)
                new = cur[:step[1]] + [prod] + cur[step[2] + 1:]
            if sum(1 for v in new if not isinstance(v, int) and RS.plan(v, sz.dims) is None) <= 1:
                x = b.emit("Reshape", [x, sz.concat(sz.pieces(new))], out)[0]  # constants and read sizes
                cur, rank = new, len(new)
                continue
            cur = new
            if kind == "unflatten":
                lo, hi, mid = step[1], step[1] + 1, sz.pieces(step[2])
                new_rank = rank + len(step[2]) - 1
            else:  # flatten start..end
                lo, hi, mid = step[1], step[2] + 1, [b.ints([-1])]
                new_rank = rank - (hi - lo) + 1
            parts = ([b.op("Shape", [x], start=0, end=lo)] if lo > 0 else []) + mid
            if hi < rank:
                parts.append(b.op("Shape", [x], start=hi))
            rank = new_rank
            x = b.emit("Reshape", [x, sz.concat(parts)], out)[0]
    return [x]


@lowering("split")
def _split(b, n, ins):
    dim = n.attrs["dim"]
    sizes = [a.shape[dim].size for a in n.outputs]
    if all(isinstance(s, int) for s in sizes):
        return b.final("Split", [ins[0], b.ints(sizes, "split")], n, axis=dim)
    sz = Sizes(b, n, ins)
    got = [b.ints([s], "size") if isinstance(s, int) else sz.get(s) for s in sizes]
    if any(v is None for v in got):
        i = got.index(None)
        rest = b.op("Shape", [ins[0]], start=dim, end=dim + 1)
        for k, v in enumerate(got):
            if k != i:
                rest = b.op("Sub", [rest, v])
        got[i] = rest
    return b.final("Split", [ins[0], b.op("Concat", got, axis=0)], n, axis=dim)


@lowering("unsqueeze", "squeeze")
def _unsqueeze(b, n, ins):
    return b.final(n.op.capitalize(), [ins[0], b.ints([n.attrs["dim"]], "axes")], n)


@lowering("pad_to_multiple")
def _pad_to_multiple(b, n, ins):
    a, x = n.attrs, ins[0]
    shape = n.inputs[0].shape
    rank, m = len(shape), a["mult"]
    ends, run = [], []
    for d in range(rank):
        size = shape[d].size
        if d not in a["dims"] or isinstance(size, int):
            run.append(0 if d not in a["dims"] else -size % m)
            continue
        if run:
            ends.append(b.ints(run, "pads"))
            run = []
        s = b.op("Shape", [x], start=d, end=d + 1)  # (m - s % m) % m, as ceil(s / m) * m - s
        up = b.op("Mul", [b.op("Div", [b.op("Add", [s, b.ints([m - 1], "factor")]), b.ints([m], "factor")]),
                          b.ints([m], "factor")])
        ends.append(b.op("Sub", [up, s]))
    if run:
        ends.append(b.ints(run, "pads"))
    pads = b.op("Concat", [b.ints([0] * rank, "pads")] + ends, axis=0)
    return b.final("Pad", [x, pads, b.const(float(a["value"]), name="value")], n, mode="constant")


@lowering("crop")
def _crop(b, n, ins):
    sz = Sizes(b, n, ins)
    dims = list(n.attrs["dims"])
    ends = [b.ints([s], "size") if isinstance(s, int) else sz.get(s) for s in n.attrs["sizes"]]
    return b.final("Slice", [ins[0], b.ints([0] * len(dims), "starts"), sz.concat(ends),
                             b.ints(dims, "axes")], n)

