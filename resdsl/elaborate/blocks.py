"""Calling a block (a mixin of the Elaborator): its parameters bound and type-checked, its tensor
inputs matched to its `input` declarations, its body elaborated in a scope of its own.
"""
from __future__ import annotations

from ..ir import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..frontend import ast
from . import traps  # a block that ends by binding a list of tensors
from ..ir.graph import Value
from . import budget as B
from . import tying
from .context import MAX_RECURSION, Ctx, Nest, add_frame, join, snake
from .describe import show_value, type_str
from .values import CALLABLE, AmbiguousIn, BlockRef, Built, type_name


class BlockMixin:
    """Binding a block's parameters and elaborating a call of it (mixed into Elaborator)."""

    # ------------------------------------------------------------------ params
    def bind_params(self, ref: BlockRef, args, kwargs, span, closure=None) -> dict:
        defn = ref.defn
        params = list(defn.params)
        bound = {}
        if len(args) > len(params):
            raise ResdslError("type", f"`{defn.name}` takes {len(params)} argument(s), {len(args)} given", span,
                              help=f"signature: {self.signature(defn)}")
        for p, v in zip(params, args):
            bound[p.name] = v
        names = {p.name for p in params}
        for k, v in kwargs.items():
            if k not in names:
                hint = did_you_mean(k, names)
                raise ResdslError("type", f"`{defn.name}` has no parameter `{k}`", self.kw_span(k, span),
                                  help=hint or f"signature: {self.signature(defn)}")
            if k in bound:
                raise ResdslError("type", f"`{defn.name}` got `{k}` twice", span)
            bound[k] = v
        env = dict(closure) if closure else {}
        defctx = Ctx(None, "", env, module=ref.module)
        for p in params:
            if p.name not in bound:
                if p.default is None:
                    raise ResdslError("type", f"`{defn.name}` needs a value for `{p.name}`", span,
                                      help=f"signature: {self.signature(defn)}")
                bound[p.name] = self.evaluate(p.default, defctx)
            if p.type is not None:
                bound[p.name] = self.check_type(bound[p.name], p.type, f"`{defn.name}` parameter `{p.name}`", span)
            env[p.name] = bound[p.name]
        return env

    def param_defaults(self, ref: BlockRef, env: dict) -> dict:
        """Default value of each block parameter that has one (for labels); unevaluable ones are left out."""
        out = {}
        for p in ref.defn.params:
            if p.default is not None:
                try:
                    out[p.name] = self.evaluate(p.default, Ctx(None, "", dict(env), module=ref.module))
                except ResdslError:
                    pass
        return out

    @staticmethod
    def signature(defn) -> str:
        parts = []
        for p in defn.params:
            t = f": {type_str(p.type)}" if p.type else ""
            d = " = ..." if p.default is not None else ""
            parts.append(f"{p.name}{t}{d}")
        return f"{defn.name}({', '.join(parts)})"

    def check_type(self, v, t: ast.TypeExpr, what, span):
        name = t.name
        ok = True
        if v is None and t.optional:
            return v
        if name == "Tensor":
            ok = isinstance(v, Value)
        elif name == "int":
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif name == "float":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if ok:
                v = float(v)
        elif name == "bool":
            ok = isinstance(v, bool)
        elif name == "str":
            ok = isinstance(v, str)
        elif name == "list":
            if isinstance(v, tuple) and all(isinstance(x, Value) for x in v):
                v = list(v)  # `parts = split(...)` is a list of tensors too
            ok = isinstance(v, list)
            if ok and t.args:
                items = [self.check_type(x, t.args[0], what + " item", span) for x in v]
                if not (isinstance(v, Built) and items == v and all(type(a) is type(b) for a, b in zip(items, v))):
                    v = items  # else keep the list: a Built remembers the fn call that made it
        elif name in ("Block", "block"):
            ok = isinstance(v, CALLABLE)
        elif name in ("any", "Any"):
            ok = True
        else:
            raise ResdslError("type", f"unknown type `{name}`", t.span,
                              help="types are int, float, bool, str, list[T], Block, Tensor, any "
                                   "(`T?` also allows none)")
        if not ok:
            raise ResdslError("type", f"{what} must be {type_str(t)}, got {type_name(v)} {show_value(v)}", span)
        return v

    # ------------------------------------------------------------------ block calls
    def apply_block(self, ref: BlockRef, tensors, args, kwargs, as_name, ctx: Ctx, span, path=None):
        self.budget.step(span, B.BLOCK_STEPS)
        with self.nested(span):
            return self._apply_block(ref, tensors, args, kwargs, as_name, ctx, span, path)

    def nested(self, span):
        """Count one more open region or block; past budget.MAX_NEST it is an error at `span`."""
        return Nest(self, span)

    def _apply_block(self, ref: BlockRef, tensors, args, kwargs, as_name, ctx: Ctx, span, path=None):
        self.depth += 1
        if self.depth > MAX_RECURSION:
            raise ResdslError("limit", f"blocks nest deeper than {MAX_RECURSION} (recursion in `{ref.name}`?)",
                              span, help="make the recursion stop: guard the recursive call with "
                                         "`if depth > 1 { ... }`")
        try:
            tensors, kwargs = _tensor_params(ref, tensors, len(args), kwargs)
            tie = None
            if "tie" in kwargs and not any(p.name == "tie" for p in ref.defn.params):
                kwargs = dict(kwargs)
                tie = kwargs.pop("tie")  # `Block(..., tie="h.0.mlp")`: every weight shared (tying.py)
            env = self.bind_params(ref, args, kwargs, span)
            if path is None:
                name = self.name_of(as_name, ctx, inline_ok=True)  # "": `Block(...) as .`, the caller's namespace
                path = ctx.prefix if name == "" else join(ctx.prefix, name or self.auto_name(ctx, snake(ref.name)))
            label = ref.name
            scope = ctx.scope.child("block", label, path, span, block=ref.name,
                                    args={k: v for k, v in env.items()
                                          if not isinstance(v, CALLABLE + (Value,)) and v is not None})
            scope.info["defaults"] = self.param_defaults(ref, env)  # diagrams show non-default args
            if ref.defn.is_network:
                scope.info["network"] = True  # its `@...` annotations are ignored here
            bctx = Ctx(scope, path, env, None, None, ref.module, counters={})
            bctx.tie = ctx.tie
            if tie is not None:
                bctx.tie = tying.block_tie(self, tie, ctx, path, self.kw_span("tie", span))
            decl_inputs = [s for s in ref.defn.body.stmts if isinstance(s, ast.Input)]
            n_declared = sum(len(s.decls) for s in decl_inputs)
            if as_name is not None and as_name.mode == "inline" and path == ctx.prefix:
                bctx.counters = ctx.counters  # inline, it shares the caller's numbering too (`as +`, `conv_0`)
                scope.info["inline"] = True
            if n_declared:
                if len(tensors) != n_declared:
                    raise ResdslError("type", f"`{ref.name}` takes {n_declared} tensor input(s), got {len(tensors)}",
                                      span)
                names = [d.name for s in decl_inputs for d in s.decls]
                for n, t in zip(names, tensors):
                    env[n] = t
                bctx.current = tensors[0]
                bctx.in_value = tensors[0] if n_declared == 1 else AmbiguousIn(tuple(names))
            else:
                if len(tensors) != 1:
                    raise ResdslError("type", f"`{ref.name}` takes one tensor input, got {len(tensors)}", span,
                                      help="declare `input a, b` in the block to take several")
                bctx.current = tensors[0]
                bctx.in_value = tensors[0]
            try:
                for st in ref.defn.body.stmts:
                    if isinstance(st, ast.Input):
                        for d in st.decls:
                            if d.shape is not None:
                                self.check_input_shape(env[d.name], d, bctx)
                        continue
                    self.stmt(st, bctx)
                traps.check_end(bctx, f"block `{ref.name}`")
            except ResdslError as err:
                # the call stack, innermost first: with 16 calls of one block the user sees which
                add_frame(err, f"in {path} ({ref.name}, called at {span.where})" if span else f"in {path}")
                raise
            scope.info["out"] = bctx.current
            if bctx.outputs:
                vals = tuple(v for _, v in bctx.outputs)
                return vals[0] if len(vals) == 1 else vals
            if bctx.current is None:
                raise ResdslError("shape", f"block `{ref.name}` computes nothing", ref.defn.span)
            return bctx.current
        finally:
            self.depth -= 1

    def check_input_shape(self, v: Value, d, ctx):
        if len(v.shape) != len(d.shape):
            raise ResdslError("shape", f"input `{d.name}` must have rank {len(d.shape)}, got "
                                       f"{S.shape_str(v.shape)}", d.span)


def _tensor_params(ref, tensors, npos, kwargs):
    """Tensors beyond the block's inputs go to its `Tensor` / `Tensor?` parameters, in order
    (`x -> Layer(d, v1)` binds `v1`), unless given by keyword or bound by a positional value."""
    free = [p.name for p in ref.defn.params[npos:] if p.type is not None and p.type.name == "Tensor"
            and p.name not in kwargs]
    n_in = sum(len(st.decls) for st in ref.defn.body.stmts if isinstance(st, ast.Input)) or 1
    if not free or len(tensors) <= n_in:
        return tensors, kwargs
    extra = tensors[n_in:]
    kwargs = dict(kwargs)
    for name, t in zip(free, extra):
        kwargs[name] = t
    return tensors[:n_in] + extra[len(free):], kwargs
