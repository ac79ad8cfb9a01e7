"""fold-branches: structural re-parameterisation (RepVGG, ACNet, Diverse Branch Block)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..ir.graph import Node
from ..ir.ops import OPS
from .base import Pass, drop_state, path_users
from .common import channel_affine, is_channel_affine, key, scale_axis


@dataclass
class Lin:
    """An affine conv on the region's source: y = conv(x, W, stride, padding, groups) + b (float64)."""
    W: torch.Tensor          # [out, in/groups, *k]
    b: torch.Tensor | None   # [out]
    groups: int
    stride: tuple
    pad: tuple
    trivial: bool = False    # the identity, before any stage

    @property
    def kernel(self):
        return tuple(self.W.shape[2:])

    @property
    def pointwise(self):
        return all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) and all(p == 0 for p in self.pad)

    def cost(self):  # multiply-adds per output position
        return self.W.shape[0] * self.W.shape[1] * math.prod(self.kernel)


def identity_lin(c: int, nd: int) -> Lin:
    return Lin(torch.ones((c, 1) + (1,) * nd, dtype=torch.float64), None, c, (1,) * nd, (0,) * nd, True)


def dense(W: torch.Tensor, g: int) -> torch.Tensor:
    out, ipg = W.shape[0], W.shape[1]
    if g == 1:
        return W
    D = W.new_zeros((out, ipg * g) + tuple(W.shape[2:]))
    ob = out // g
    for j in range(g):
        D[j * ob:(j + 1) * ob, j * ipg:(j + 1) * ipg] = W[j * ob:(j + 1) * ob]
    return D


def regroup(W: torch.Tensor, g: int, G: int) -> torch.Tensor:
    """The same conv written with G groups (G divides g)."""
    if g == G:
        return W
    D = dense(W, g)
    out, cin = D.shape[0], D.shape[1]
    ob, ib = out // G, cin // G
    return torch.cat([D[j * ob:(j + 1) * ob, j * ib:(j + 1) * ib] for j in range(G)], 0)


class Refuse(Exception):
    pass


def conv_lin(n: Node, weights) -> Lin:
    a = n.attrs
    nd = a["_nd"]
    if a["padding_mode"] != "zeros":
        raise Refuse(f"conv @{n.path} pads with `{a['padding_mode']}`, not zeros")
    k = tuple(a["kernel"]) if isinstance(a["kernel"], (list, tuple)) else (a["kernel"],) * nd
    dil = tuple(a["dilation"]) if isinstance(a["dilation"], (list, tuple)) else (a["dilation"],) * nd
    if any(d != 1 and kk != 1 for d, kk in zip(dil, k)):
        raise Refuse(f"conv @{n.path} is dilated")
    if any(t % 2 for t in a["_pad_total"]):
        raise Refuse(f"conv @{n.path} pads asymmetrically")
    st = tuple(a["stride"]) if isinstance(a["stride"], (list, tuple)) else (a["stride"],) * nd
    W = weights[key(n, "weight")].double()
    b = weights[key(n, "bias")].double() if a["bias"] else None
    return Lin(W, b, a["groups"], st, tuple(t // 2 for t in a["_pad_total"]))


def pool_lin(n: Node, c: int) -> Lin:
    a = n.attrs
    nd = a["_nd"]
    t = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * nd  # noqa: E731
    k = t(a["kernel"])
    st = t(a["stride"] if a["stride"] is not None else a["kernel"])
    p = t(a["padding"])
    if a["ceil_mode"]:
        raise Refuse("avgpool with ceil_mode")
    if any(p) and not a["count_include_pad"]:
        raise Refuse("avgpool with count_include_pad=false divides by a varying count at the border")
    W = torch.full((c, 1) + k, 1.0 / math.prod(k), dtype=torch.float64)
    return Lin(W, None, c, st, p)


def then_affine(cur: Lin, s: torch.Tensor, t) -> Lin:
    out = cur.W.shape[0]
    s = s if s.dim() == 1 else s.expand(out)
    W = cur.W * s.reshape((-1,) + (1,) * (cur.W.dim() - 1))
    b = cur.b * s if cur.b is not None else None
    if t is not None:
        b = t if b is None else b + t
    return Lin(W, b, cur.groups, cur.stride, cur.pad, False)


def then_kernel(cur: Lin, nxt: Lin, what: str) -> Lin:
    if cur.trivial:
        return nxt
    if not cur.pointwise:
        raise Refuse(f"{what} follows a {'x'.join(map(str, cur.kernel))} kernel with stride {cur.stride}; "
                     "only a 1x1, stride-1 conv merges into a following kernel")
    if any(nxt.pad) and cur.b is not None and bool((cur.b != 0).any()):
        raise Refuse(f"{what} pads with zeros, but the 1x1 conv before it adds a bias, so its border would differ")
    A = dense(cur.W, cur.groups).reshape(cur.W.shape[0], -1)  # [mid, in]: cur is 1x1
    B = dense(nxt.W, nxt.groups)  # [out, mid, *k]
    W = torch.einsum("om...,mi->oi...", B, A)
    b = nxt.b
    if cur.b is not None:
        extra = torch.einsum("om...,m->o", B, cur.b)
        b = extra if b is None else b + extra
    G = math.gcd(cur.groups, nxt.groups)
    return Lin(regroup(W, 1, G) if G != 1 else W, b, G, nxt.stride, nxt.pad, False)


def is_stage(n: Node) -> bool:
    if n is None or len(n.inputs) != 1 or len(n.outputs) != 1:
        return False
    if n.has("conv") or is_channel_affine(n) or n.op == "identity":
        return True
    return n.op == "avgpool"  # the one linear pooling with a kernel form


def branch_lin(chain, c_in, nd, weights) -> Lin:
    cur = identity_lin(c_in, nd)
    for n in chain:
        rank = len(n.outputs[0].shape)
        if n.op == "identity":
            continue
        if is_channel_affine(n):
            ax = scale_axis(n, rank)
            if ax not in (None, 1):
                raise Refuse(f"`{n.op}` scales axis {ax}, not the channels")
            s, t = channel_affine(n, weights)
            cur = then_affine(cur, s, t)
        elif n.has("conv"):
            cur = then_kernel(cur, conv_lin(n, weights), f"conv @{n.path}")
        else:
            cur = then_kernel(cur, pool_lin(n, n.inputs[0].shape[1].size), f"`{n.op}`")
    return cur


def trace(v, users, sink, outputs):
    """Walk back from `v` (consumed by `sink`) through single-consumer linear stages.

    Returns (source value, stage nodes in order)."""
    chain = []
    consumer = sink
    while True:
        us = users.get(v, [])
        if v in outputs or any(u is not consumer for u in us):
            break
        p = v.producer
        if not is_stage(p):
            break
        chain.append(p)
        consumer = p
        v = p.inputs[0]
    chain.reverse()
    return v, chain


def describe(chain) -> str:
    if not chain:
        return "identity"
    parts = []
    for n in chain:
        if n.has("conv"):
            k = n.attrs["kernel"]
            parts.append("conv " + ("x".join(map(str, k)) if isinstance(k, (list, tuple)) else f"{k}x{k}"))
        else:
            parts.append(n.op)
    return " + ".join(parts)


def sum_lins(lins, coeffs):
    if len({lin.W.shape[0] for lin in lins}) != 1:
        raise Refuse("the branches give different channel counts (a broadcasting add)")
    strides = {lin.stride for lin in lins}
    if len(strides) != 1:
        raise Refuse(f"the branches have different strides {sorted(strides)}")
    nd = len(lins[0].stride)
    centre = {tuple(2 * p - (k - 1) for p, k in zip(lin.pad, lin.kernel)) for lin in lins}
    if len(centre) != 1:
        raise Refuse("the branches' kernel centres do not line up (padding - (kernel - 1) / 2 differs)")
    K = tuple(max(lin.kernel[d] for lin in lins) for d in range(nd))
    P = tuple(max(lin.pad[d] for lin in lins) for d in range(nd))
    G = 0
    for lin in lins:
        G = math.gcd(G, lin.groups)
    out = lins[0].W.shape[0]
    W = None
    b = None
    for lin, c in zip(lins, coeffs):
        w = regroup(lin.W, lin.groups, G) * c
        pads = []
        for d in reversed(range(nd)):
            off = P[d] - lin.pad[d]
            pads += [off, K[d] - lin.kernel[d] - off]
        w = torch.nn.functional.pad(w, pads)
        W = w if W is None else W + w
        if lin.b is not None:
            b = lin.b * c if b is None else b + lin.b * c
    assert W.shape[0] == out
    return Lin(W, b, G, lins[0].stride, P, False)


def build_conv(src, lin: Lin, path, like: Node, scope, span, out_value, weights):
    nd = len(lin.stride)
    k = lin.kernel
    attrs = {"out": lin.W.shape[0], "kernel": k[0] if len(set(k)) == 1 else list(k),
             "stride": lin.stride[0] if len(set(lin.stride)) == 1 else list(lin.stride),
             "padding": lin.pad[0] if len(set(lin.pad)) == 1 else list(lin.pad),
             "dilation": 1, "groups": lin.groups, "bias": lin.b is not None, "padding_mode": "zeros",
             "weight_init": None, "bias_init": None}
    (shape,), params = OPS["conv"].rule([src.shape], attrs)
    if tuple(a.size for a in shape) != tuple(a.size for a in out_value.shape):
        raise Refuse(f"the folded conv would give {[a.size for a in shape]}, the region gives "
                     f"{[a.size for a in out_value.shape]}")
    assert attrs["_nd"] == nd
    node = Node("conv", [src], [out_value], attrs, path, params, scope, span)
    dt = weights[key(like, "weight")].dtype
    new = {f"{path}.weight": lin.W.to(dt)}
    if lin.b is not None:
        new[f"{path}.bias"] = lin.b.to(dt)
    return node, new


def _stage_cost(chain):
    c = 0
    for n in chain:
        if n.has("conv"):
            w = n.params["weight"].shape
            c += math.prod(w)
        elif n.op == "avgpool":
            k = n.attrs["kernel"]
            c += n.inputs[0].shape[1].size * math.prod(k if isinstance(k, (list, tuple)) else [k] * n.attrs["_nd"])
    return c


class FoldBranches(Pass):
    """Fold a region of linear branches that are summed before any nonlinearity into one conv
    (RepVGG, ACNet, Diverse Branch Block), and a 1x1 conv followed by a kxk conv into one kxk.

    Regions are found through the dataflow: an `add` (or an n-way `mean`) whose inputs are
    chains of single-consumer linear stages (conv, eval-mode bn, scale / layer scale, avgpool,
    identity) that all start from the same value; a branch with no stage is the identity. This
    covers `residual { ... }` (body + skip or shortcut) and `parallel { a | b | c }` alike.
    Legal (eval mode only: it relies on bn being affine): every branch composes to one conv on
    the source, i.e. a kernel stage may only follow a 1x1, stride-1 conv, and when it pads, that
    1x1 conv must have no bias (zero padding would otherwise differ at the border); all branches
    have equal strides and aligned kernel centres (2 * padding - (kernel - 1) equal per axis),
    zero padding, no dilation; groups are combined to their gcd (identity, bn and avgpool are
    depthwise); no branch op shares weights; at least one branch holds a conv, and the folded
    conv costs no more multiply-adds than the branches did (so a depthwise kxk plus a dense 1x1
    stays as it is). Sequential chains with two or more kernels (1x1 -> kxk) fold on the same rules.
    Requires: eval-mode weights (running statistics) for bn stages.
    Guarantees: the merge and the branch ops are replaced by one conv at the position of the
    merge, producing the merge's value (same name); it takes the path of the branches' largest
    conv, with `<path>.weight` and `<path>.bias` computed in float64; the other branch tensors leave
    the weights.
    """

    name = "fold-branches"
    level = 2
    training_safe = False

    def run(self, g, weights, ctx):
        refused = set()
        changed = True
        while changed:
            changed = False
            for n in list(g.nodes):
                if id(n) in refused:
                    continue
                if self._merge_coeffs(n) is not None or (n.has("conv") and self._is_chain_end(g, n)):
                    try:
                        if self._fold(g, n, weights, ctx):
                            changed = True
                            break
                    except Refuse as e:
                        refused.add(id(n))
                        if self._merge_coeffs(n) is not None and "same value" not in str(e):
                            ctx.note(self.name, n, f"kept `{n.op}` of {len(n.inputs)} branches: {e}", rewrite=False)
        return g, weights

    @staticmethod
    def _merge_coeffs(n):
        if n.has("merge") and n.has("linear") and n.has("elementwise") and len(n.outputs) == 1:
            return [1.0] * len(n.inputs)  # add
        if n.op == "mean" and n.attrs.get("_merge") and len(n.inputs) > 1:
            return [1.0 / len(n.inputs)] * len(n.inputs)
        return None

    @staticmethod
    def _is_chain_end(g, n):
        us = g.users().get(n.outputs[0], [])
        return not (len(us) == 1 and us[0] is not None and is_stage(us[0]))

    def _fold(self, g, n, weights, ctx):
        users = g.users()
        pu = path_users(g)
        coeffs = self._merge_coeffs(n)
        if coeffs is not None:
            traced = [trace(v, users, n, g.outputs) for v in n.inputs]
            out_value = n.outputs[0]
            drop_nodes = [n]
        else:  # a sequential chain ending in this conv
            src, chain = trace(n.inputs[0], users, n, g.outputs)
            chain = chain + [n]
            if sum(1 for m in chain if m.has("conv") or m.op == "avgpool") < 2:
                return False
            traced, coeffs, out_value, drop_nodes = [(src, chain)], [1.0], n.outputs[0], []
        srcs = {id(s) for s, _ in traced}
        if len(srcs) != 1:
            raise Refuse("the branches do not start from the same value")
        src = traced[0][0]
        if len(src.shape) not in (3, 4, 5) or not isinstance(src.shape[1].size, int):
            raise Refuse("the source is not an N, C, *spatial tensor")
        stages = [m for _, ch in traced for m in ch]
        convs = [m for m in stages if m.has("conv")]
        if not convs:
            raise Refuse("no branch holds a conv")
        for m in stages:
            if m.params and pu.get(m.path, 0) != 1:
                raise Refuse(f"@{m.path} shares its weights with another op")
        nd = len(src.shape) - 2
        lins = [branch_lin(ch, src.shape[1].size, nd, weights) for _, ch in traced]
        lin = sum_lins(lins, coeffs)
        before_cost = sum(_stage_cost(ch) for _, ch in traced)
        after_cost = lin.W.numel()
        if after_cost > before_cost:
            raise Refuse(f"the folded conv would cost {after_cost:,} multiply-adds per position, "
                         f"the branches {before_cost:,}")
        main = max(convs, key=lambda m: math.prod(m.params["weight"].shape[2:]))
        span = n.span if coeffs is not None and len(traced) > 1 else main.span
        scope = n.scope if len(traced) > 1 else main.scope
        node, new = build_conv(src, lin, main.path, main, scope, span, out_value, weights)
        gone = {id(m) for m in stages} | {id(m) for m in drop_nodes}
        before_nodes = len(gone)
        before_params = sum(math.prod(s.shape) for m in {id(x): x for x in stages}.values()
                            for s in m.params.values() if s.kind == "param")
        pos = next(i for i, m in enumerate(g.nodes) if m is n)
        removed = [m for m in g.nodes if id(m) in gone]
        g.nodes = g.nodes[:pos] + [node] + g.nodes[pos + 1:]
        g.nodes = [m for m in g.nodes if id(m) not in gone]
        out_value.producer = node
        for m in removed:
            drop_state(g, weights, m)
        weights.update(new)
        desc = ", ".join(describe(ch) for _, ch in traced)
        what = f"{len(traced)} branches ({desc})" if len(traced) > 1 else f"chain ({desc})"
        k = "x".join(map(str, lin.kernel))
        ctx.note(self.name, node, f"{what} -> one conv {k} @{main.path} (groups={lin.groups}; "
                                  f"{before_nodes} nodes, {before_params:,} parameters -> 1 node, "
                                  f"{lin.W.numel() + (0 if lin.b is None else lin.b.numel()):,} parameters)")
        return True
