"""Linear maps: linear (on the last axis), embedding (a lookup table) and matmul."""
from __future__ import annotations

from .. import shapes as S
from ..shapes import Axis
from .core import (
    POS,
    Legal,
    REQUIRED,
    TORCH_INIT,
    OpError,
    broadcast,
    check_dim,
    last_axis,
    last_two_axes,
    op,
    static,
    weight,
    with_axis,
)


def _linear_macs(n):
    return S.mul(S.numel(n.outputs[0].shape), n.attrs["_in"])


@op("linear", [("out", "int", REQUIRED, POS), ("bias", "bool", True), ("weight_init", "init", None),
               ("bias_init", "init", None), ("layout", "str", None, Legal(choices=("out_in", "in_out")))],
    traits=("linear", "has_params", "affine_out"),
    doc="affine map on the last axis; layout=\"in_out\" stores the weight [in, out] (Hugging Face's Conv1D), "
        "the default (none, or \"out_in\") [out, in] as torch.nn.Linear",
    family="linear", label=lambda n: f"linear {n.attrs['out']}", axes_note="if_broadcast", axes=last_axis,
    macs=_linear_macs, init=TORCH_INIT)
def _linear(ins, a):
    (x,) = ins
    if len(x) < 1:
        raise OpError("`linear` needs a tensor of rank >= 1")
    cin = static(x[-1].size, "the last axis of a `linear` input")
    check_dim(a["out"], "output features")
    a["_in"] = cin
    y = with_axis(x, len(x) - 1, a["out"])
    shape = (cin, a["out"]) if a["layout"] == "in_out" else (a["out"], cin)
    params = {"weight": weight(shape, a["weight_init"])}
    if a["bias"]:
        params["bias"] = weight((a["out"],), a["bias_init"])
    return [y], params


@op("embedding", [("num", "int", REQUIRED, POS), ("dim", "int", REQUIRED, POS), ("weight_init", "init", None)],
    traits=("has_params",), doc="lookup table: integer ids [..] -> [.., dim]",
    family="linear", label=lambda n: f"embedding {n.attrs['num']}→{n.attrs['dim']}", axes=last_axis, macs=0,
    init=TORCH_INIT)
def _emb(ins, a):
    (x,) = ins
    return [tuple(x) + (Axis(a["dim"], "D"),)], {"weight": weight((a["num"], a["dim"]), a["weight_init"])}


def _matmul_macs(n):
    return S.mul(S.numel(n.outputs[0].shape), n.inputs[0].shape[-1].size)


@op("matmul", [], inputs=(2, 2), traits=("pure",), doc="matrix product of the last two axes",
    family="linear", axes=last_two_axes, macs=_matmul_macs)
def _matmul(ins, a):
    x, y = ins
    if len(x) < 2 or len(y) < 2 or x[-1].size != y[-2].size:
        raise OpError(f"`matmul` needs [.., n, k] @ [.., k, m], got {S.shape_str(x)} and {S.shape_str(y)}")
    try:  # leading (batch) axes broadcast, as in torch.matmul
        batch = broadcast(x[:-2], y[:-2])
    except OpError:
        raise OpError(f"`matmul` batch axes do not broadcast: {S.shape_str(x)} and {S.shape_str(y)}") from None
    return [tuple(batch) + (x[-2], y[-1])], {}
