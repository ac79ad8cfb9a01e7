"""Selective state space models: Mamba's selective scan (S6), as ``selective_scan_fn`` of the
mamba_ssm package and VMamba's ``selective_scan`` compute it.

``selective_scan(u, delta, a, b, c)``, with the optional ``d`` and ``delta_bias`` after them in
Mamba's order (``selective_scan(u, delta, a, b, c, d, delta_bias, delta_softplus=true)``):

* u, delta: [N, D, L] (D channels, L steps), a: [D, S] (S the state size),
* b, c: [N, S, L], or [N, G, S, L] with G groups of D/G consecutive channels each (VMamba folds
  its K scan orders into the channels, [N, K*D, L], with b and c [N, K, S, L]),
* d: [D] (the skip term), delta_bias: [D] (added to delta before the optional softplus).

From h_0 = 0, per channel and state element,

    delta = softplus(delta + delta_bias)   (the softplus only with delta_softplus=true)
    h_t = exp(delta_t a) h_{t-1} + delta_t b_t u_t,    y_t = sum_s c_t h_t + d u_t

-> y [N, D, L]. The torch lowering is a chunked scan (memory linear in L, ~2 sqrt(L) steps of
Python, see backends/torch/runtime_ssm.py); ONNX is a ``Scan`` over L.
"""
from __future__ import annotations

from .. import shapes as S
from .core import OpError, check_rank, last_two_axes, op, static


def _groups(n):
    b = n.inputs[3].shape
    return b[1].size if len(b) == 4 else 1


def _label(n):
    s = n.inputs[2].shape[1].size
    g = _groups(n)
    return f"selective scan, S={s}" + (f", {g} groups" if g > 1 else "")


def _macs(n):
    """The output contraction y_t = sum_s c_t h_t: N D L S (the recurrence itself is elementwise
    work, which the summary does not count, as for the other elementwise ops)."""
    u = n.inputs[0].shape
    return S.mul(S.mul(u[0].size, u[2].size), S.mul(u[1].size, n.inputs[2].shape[1].size))


def _same(x, y) -> bool:
    return x.size == y.size


@op("selective_scan", [("delta_softplus", "bool", False)], inputs=(5, 7), traits=("pure",),
    doc="Mamba's selective scan (S6) of u, delta [N, D, L], a [D, S], b, c [N, S, L] or [N, G, S, L] "
        "(G groups of channels), optional d [D] and delta_bias [D]: delta = softplus(delta + delta_bias) "
        "(the softplus with delta_softplus=true), h_t = exp(delta_t a) h_{t-1} + delta_t b_t u_t from h_0 = 0, "
        "y_t = c_t h_t + d u_t -> y [N, D, L]",
    family="recurrent", label=_label, axes=last_two_axes, macs=_macs)
def _selective_scan(ins, a):
    u, delta, am, b, c = ins[:5]
    check_rank(u, (3,), "selective_scan", "u: N, D, L")
    if len(delta) != 3 or not all(_same(x, y) for x, y in zip(u, delta)):
        raise OpError(f"`selective_scan` needs delta of u's shape {S.shape_str(u)} ([N, D, L]), got "
                      f"{S.shape_str(delta)}", help="delta is one step size per channel and step")
    d = static(u[1].size, "the channel axis D of `selective_scan`'s u")
    check_rank(am, (2,), "selective_scan", "a: D, S")
    if am[0].size != d:
        raise OpError(f"`selective_scan` needs a of shape [D, S] with D = {d} (u's channels), got "
                      f"{S.shape_str(am)}")
    s = static(am[1].size, "the state size S of `selective_scan`'s a")
    for t, what in ((b, "b"), (c, "c")):
        check_rank(t, (3, 4), "selective_scan", f"{what}: N, S, L or N, G, S, L")
        if not (_same(t[0], u[0]) and t[-2].size == s and _same(t[-1], u[2])):
            raise OpError(f"`selective_scan` needs {what} of shape [N, S, L] or [N, G, S, L] with S = {s} "
                          f"(a's state size) and u's N and L ({S.shape_str(u)}), got {S.shape_str(t)}")
    if len(b) != len(c) or not all(_same(x, y) for x, y in zip(b, c)):
        raise OpError(f"`selective_scan` needs b and c of one shape, got {S.shape_str(b)} and {S.shape_str(c)}")
    if len(b) == 4:
        g = static(b[1].size, "the group axis G of `selective_scan`'s b")
        if d % g:
            raise OpError(f"`selective_scan`'s {g} groups (b's axis 1) must divide u's {d} channels",
                          kind="type", help="each group of D/G consecutive channels reads one b and c")
    for t, what in zip(ins[5:], ("d", "delta_bias")):
        if len(t) != 1 or t[0].size != d:
            raise OpError(f"`selective_scan` needs {what} of shape [{d}] (one value per channel of u), "
                          f"got {S.shape_str(t)}")
    return [u], {}
