"""Ops that mix tokens along a sequence: multi-head self-attention and the LSTM."""
from __future__ import annotations

from .. import shapes as S
from .core import (
    POS,
    PROB,
    REQUIRED,
    TORCH_INIT,
    OpError,
    check_dim,
    check_rank,
    last_two_axes,
    op,
    static,
    weight,
    with_axis,
)


def _mha_label(n):
    return f"attention, {n.attrs['heads']} heads" + (", causal" if n.attrs["causal"] else "")


def _mha_macs(n):
    x = n.inputs[0].shape
    d = n.attrs["_d"]
    tokens = S.mul(x[0].size, x[1].size)
    proj = S.mul(tokens, 4 * d * d)
    scores = S.mul(S.mul(tokens, x[1].size), 2 * d)
    return S.add(proj, scores)


@op("attention", [("heads", "int", REQUIRED, POS), ("dropout", "num", 0.0, PROB), ("bias", "bool", True),
                  ("causal", "bool", False)],
    traits=("has_params",), doc="multi-head self-attention on [N, L, D] (torch.nn.MultiheadAttention)",
    family="linear", label=_mha_label, axes_note="always", axes=last_two_axes, macs=_mha_macs, init=TORCH_INIT)
def _mha(ins, a):
    (x,) = ins
    check_rank(x, (3,), "attention", "N, L, D")
    d = static(x[2].size, "the model dimension of `attention`")
    if d % a["heads"]:
        raise OpError(f"attention heads={a['heads']} must divide the model dimension {d}", kind="type")
    a["_d"] = d
    p = {"in_proj_weight": weight((3 * d, d))}
    if a["bias"]:
        p["in_proj_bias"] = weight((3 * d,))
    p["out_proj.weight"] = weight((d, d))
    if a["bias"]:
        p["out_proj.bias"] = weight((d,))
    return [x], p


def _lstm_macs(n):  # per token and direction: 4 gates x hidden x (input + hidden)
    x = n.inputs[0].shape
    h = n.attrs["hidden"]
    dirs = 2 if n.attrs["bidirectional"] else 1
    return S.mul(S.mul(x[0].size, x[1].size), dirs * 4 * h * (n.attrs["_in"] + h))


@op("lstm", [("hidden", "int", REQUIRED, POS), ("bidirectional", "bool", False), ("bias", "bool", True)],
    traits=("has_params",),
    doc="one LSTM layer over [N, L, D] (batch first); gives [N, L, hidden (x2 if bidirectional)]",
    family="linear", axes=last_two_axes, macs=_lstm_macs, init=TORCH_INIT)
def _lstm(ins, a):
    (x,) = ins
    check_rank(x, (3,), "lstm", "N, L, D")
    d = static(x[2].size, "the feature axis of `lstm`")
    h = check_dim(a["hidden"], "hidden size")
    a["_in"] = d
    p = {}
    for sfx in ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",):
        p["weight_ih" + sfx] = weight((4 * h, d))
        p["weight_hh" + sfx] = weight((4 * h, h))
        if a["bias"]:
            p["bias_ih" + sfx] = weight((4 * h,))
            p["bias_hh" + sfx] = weight((4 * h,))
    return [with_axis(x, 2, h * (2 if a["bidirectional"] else 1))], p
