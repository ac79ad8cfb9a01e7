"""Weight tying across ops: `linear(vocab, bias=false, tie="wte") as lm_head`.

The op's parameters that the named op also has (same local name, same shape) become the
same tensor, with PyTorch's semantics: both keys stay in the state_dict (`lm_head.weight`
and `wte.weight`, as GPT-2's checkpoints have them), one tensor backs both, and the ONNX
file holds one initializer. In the IR the tied parameter is a ParamSpec of kind "tied"
(not counted again) and the node's `_tie` attribute maps its local name to the owner's path.
"""
from __future__ import annotations

from ..diagnostics import ResdslError, did_you_mean
from ..ir.ops import ParamSpec


def resolve(el, tie, od, params, ctx, span):
    """(params with tied entries marked, ((local, owner's full name), ...))."""
    if not isinstance(tie, str) or not tie:
        raise ResdslError("type", f"`tie` must name an op with weights (a string), got {tie!r}", span,
                          help='e.g. linear(vocab, bias=false, tie="wte")')
    if not params:
        raise ResdslError("type", f"`{od.name}` has no weights to tie", span)
    owner = None
    for cand in ((ctx.prefix + "." + tie) if ctx.prefix else tie, tie):
        if cand in el.param_specs:
            owner = cand
            break
    if owner is None:
        hint = did_you_mean(tie, list(el.param_specs))
        raise ResdslError("name", f"`tie=\"{tie}\"`: no op with weights of that name is defined before here", span,
                          help=hint or "tie to an op named with `as` earlier in the network, e.g. the embedding "
                                       "`as wte`")
    theirs = el.param_specs[owner]
    ties = []
    for local, spec in params.items():
        if local in theirs and spec.kind == "param" and theirs[local].kind == "param":
            if tuple(theirs[local].shape) != tuple(spec.shape):
                raise ResdslError("shape", f"cannot tie `{local}` to `{owner}.{local}`: shapes differ", span,
                                  label=f"this {od.name}: {list(spec.shape)}, {owner}: {list(theirs[local].shape)}")
            ties.append((local, f"{owner}.{local}" if local else owner))
    if not ties:
        raise ResdslError("type", f"`{od.name}` and `{owner}` have no parameter in common to tie", span,
                          help=f"this op has {', '.join(params)}; `{owner}` has {', '.join(theirs)}")
    tied = dict(ties)
    new = {k: (ParamSpec(tuple(s.shape), "tied", None) if k in tied else s) for k, s in params.items()}
    return new, tuple(ties)
