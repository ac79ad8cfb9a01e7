"""Shared helpers for the folding passes: state names, per-channel affine maps."""
from __future__ import annotations

import torch


def key(node, local: str) -> str:
    return node.path if local == "" else f"{node.path}.{local}"


def channel_affine(node, weights: dict):
    """(scale, shift) of an eval-mode per-channel affine op, in float64.

    scale: a 1-D tensor (per channel) or a 0-D tensor (one factor); shift: a 1-D tensor or None.
    Covers BatchNorm in eval mode (trait `affine_eval`) and constant / learned scales
    (trait `channel_scale`: scale, scalar_mul, layer_scale)."""
    a = node.attrs
    if node.has("affine_eval"):
        mean = weights[key(node, "running_mean")].double()
        var = weights[key(node, "running_var")].double()
        inv = torch.rsqrt(var + float(a["eps"]))
        if a.get("affine", True):
            gamma = weights[key(node, "weight")].double()
            beta = weights[key(node, "bias")].double()
        else:
            gamma, beta = torch.ones_like(mean), torch.zeros_like(mean)
        s = gamma * inv
        return s, beta - mean * s
    if node.op == "scale":
        return torch.tensor(float(a["factor"]), dtype=torch.float64), None
    if node.has("channel_scale"):
        (local,) = node.params
        return weights[key(node, local)].double().reshape(-1) if local == "gamma" else \
            weights[key(node, local)].double().reshape(()), None
    raise ValueError(f"{node.op} is not a per-channel affine op")


def is_channel_affine(node) -> bool:
    return node.has("affine_eval") or node.has("channel_scale")


def scale_axis(node, rank: int):
    """The axis a per-channel affine node scales (None for a scalar)."""
    if node.has("affine_eval"):
        return 1
    if "_axis" in node.attrs:
        return node.attrs["_axis"] % rank
    return None
