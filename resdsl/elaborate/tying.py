"""Weight tying across ops: `linear(vocab, bias=false, tie="wte") as lm_head`.

The op's parameters that the named op also has (same local name, same shape) become the
same tensor, with PyTorch's semantics: both keys stay in the state_dict (`lm_head.weight`
and `wte.weight`, as GPT-2's checkpoints have them), one tensor backs both, and the ONNX
file holds one initializer. In the IR the tied parameter is a ParamSpec of kind "tied"
(not counted again) and the node's `_tie` attribute maps its local name to the owner's path.

- The owner may be defined later in the network: such a tie is resolved when the network is
  done (:func:`finish`), with the same checks.
- A tie that names the op itself does nothing, so one `tie="h.0.mlp"` written in a `repeat`
  shares the first iteration's module with the whole stage.
- `tie` on a block call ties every op with weights inside it to the op at the same relative
  path under the named block (`MLP(d, tie="h.{i}.mlp") as mlp`).
- The string is a template: `{...}` holds an expression (`tie="h.{i}.mlp"`).
- A transposed tie is a linear with `layout="in_out"` (weight stored [in, out]) tied to a
  linear's [out, in] weight: one tensor, read transposed.
"""
from __future__ import annotations

from ..diagnostics import ResdslError, did_you_mean
from ..frontend.read import parse_expr
from ..frontend.syntax import template_pieces
from ..ir.ops import ParamSpec
from .values import type_name


class BlockTie:
    """A `tie=` on a block call: the candidate owner paths of the block and the block's own path."""
    __slots__ = ("bases", "path", "span", "text")

    def __init__(self, bases, path, text, span):
        self.bases, self.path, self.text, self.span = bases, path, text, span


def tie_text(el, tie, ctx, span) -> str:
    """The tie's target with its `{...}` pieces evaluated."""
    if not isinstance(tie, str) or not tie:
        raise ResdslError("type", f"`tie` must name an op with weights (a string), got {tie!r}", span,
                          help='e.g. linear(vocab, bias=false, tie="wte")')
    if "{" not in tie:
        return tie
    pieces = template_pieces(tie)
    if pieces is None:
        raise ResdslError("syntax", f"`tie=\"{tie}\"`: a `{{` is never closed", span,
                          help='a template holds `{expression}`: tie="h.{i}.mlp"')
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(p)
            continue
        v = el.evaluate(parse_expr(p[0], span), ctx)
        if not isinstance(v, (int, str)) or isinstance(v, bool):
            raise ResdslError("type", f"a piece of a `tie` template must be an int or str, got {type_name(v)}", span)
        out.append(str(v))
    return "".join(out)


def candidates(ctx, text) -> list:
    """Where `text` may point: relative to the enclosing block, then from the network root."""
    out = [f"{ctx.prefix}.{text}" if ctx.prefix else text, text]
    return list(dict.fromkeys(out))


def block_tie(el, tie, ctx, path, span):
    """The BlockTie of `Block(..., tie="...") as path`, or None when it names the block itself."""
    text = tie_text(el, tie, ctx, span)
    bases = candidates(ctx, text)
    if path in bases:
        return None
    return BlockTie(bases, path, text, span)


def resolve(el, tie, od, params, ctx, span, path, attrs):
    """(params with tied entries marked, ((local, owner's full name), ...), pending candidates or None).

    `tie` is the op's own `tie=` (a string) or None; inside a tied block call the op's owner is
    the same relative path under the named block."""
    if tie is not None:
        text = tie_text(el, tie, ctx, span)
        if not params:
            raise ResdslError("type", f"`{od.name}` has no weights to tie", span)
        cands = candidates(ctx, text)
    else:
        if not any(s.kind == "param" for s in params.values()):
            return params, (), None  # in a tied block: an op with buffers only (bn(affine=false)) keeps them
        bt = ctx.tie
        rel = path[len(bt.path) + 1:] if path.startswith(bt.path + ".") else path
        text, span = f"{bt.text}.{rel}", bt.span
        cands = [f"{b}.{rel}" for b in bt.bases]
    owner = next((c for c in cands if c in el.param_specs), None)
    if owner is None and path in cands:
        return params, (), None  # the op names itself: it is the owner (the first of a shared stage)
    if owner is None:
        return params, (), (cands, text, span)  # defined later: finish() ties it
    if owner == path:
        return params, (), None
    new, ties = link(el, owner, od.name, params, span, path, attrs)
    return new, ties, None


def _layout(attrs):
    return (attrs["layout"] or "out_in") if "layout" in attrs else None


def link(el, owner, opname, params, span, path, attrs):
    """Mark the parameters of an op that `owner` also has as tied; check their shapes.

    Between two linears of different layouts (a transposed tie) only the weight is tied: the
    biases have the two output sizes."""
    theirs = el.param_specs[owner]
    mine_l, their_l = _layout(attrs), _layout(el.node_at[owner].attrs) if owner in el.node_at else None
    transposed = mine_l is not None and their_l is not None and mine_l != their_l
    ties = []
    for local, spec in params.items():
        if transposed and local != "weight":
            continue
        if local in theirs and spec.kind == "param" and theirs[local].kind in ("param", "tied"):
            mine, other = tuple(spec.shape), tuple(theirs[local].shape)
            if other != mine:
                hint = None
                if len(mine) == 2 and other == mine[::-1]:
                    hint = ("the shapes are transposed: a linear with layout=\"in_out\" stores its weight "
                            "[in, out] and reads the tied tensor transposed")
                raise ResdslError("shape", f"cannot tie `{local}` to `{owner}.{local}`: shapes differ "
                                           f"({list(mine)} here, {list(other)} there)", span,
                                  label=f"this {opname}: {list(mine)}, {owner}: {list(other)}", help=hint)
            full = f"{owner}.{local}" if local else owner
            full = el.tied_to.get(full, full)  # a chain of ties ends at the first owner
            if full == (f"{path}.{local}" if local else path):
                raise ResdslError("name", f"`{path}` and `{owner}` are tied to each other, so no op owns the tensor",
                                  span, help="let one of them own the weights: remove the other's `tie=`")
            ties.append((local, full))
    if not ties:
        raise ResdslError("type", f"`{opname}` and `{owner}` have no parameter in common to tie", span,
                          help=f"this op has {', '.join(params)}; `{owner}` has {', '.join(theirs)}")
    tied = dict(ties)
    new = {k: (ParamSpec(tuple(s.shape), "tied", None) if k in tied else s) for k, s in params.items()}
    return new, tuple(ties)


def record(el, node, ties):
    """Remember which full parameter names are tied to which owner (for chains of ties)."""
    for local, owner in ties:
        el.tied_to[f"{node.path}.{local}" if local else node.path] = owner


def finish(el):
    """Resolve the ties whose owner was defined after them, now that every op exists. A tie whose
    owner is itself waiting for a later owner is resolved after it (a chain ends at the first owner)."""
    pending, el.pending_ties = el.pending_ties, []
    while pending:
        waiting = {node.path for node, _ in pending}
        left = []
        for node, (cands, text, span) in pending:
            owner = next((c for c in cands if c in el.param_specs), None)
            if owner is None:
                hint = did_you_mean(text, list(el.param_specs)) or did_you_mean(cands[0], list(el.param_specs))
                raise ResdslError("name", f"`tie=\"{text}\"`: no op with weights of that name in the network", span,
                                  help=hint or "tie to an op named with `as` (the embedding `as wte`); the path "
                                               "is relative to the block, else from the network's top")
            if owner in waiting and owner != node.path:
                left.append((node, (cands, text, span)))
                continue
            waiting.discard(node.path)
            if owner == node.path:
                continue
            new, ties = link(el, owner, node.op, node.params, span, node.path, node.attrs)
            node.params.clear()
            node.params.update(new)  # the same dict is el.param_specs[node.path]
            node.attrs["_tie"] = ties
            record(el, node, ties)
        if len(left) == len(pending):
            node, (cands, text, span) = left[0]
            raise ResdslError("name", f"`tie=\"{text}\"`: these ties form a cycle, so no op owns the tensor", span,
                              help="let one op of the cycle own the weights: remove its `tie=`")
        pending = left
