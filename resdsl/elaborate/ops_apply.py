"""Applying a primitive op (a mixin of the Elaborator): its arguments checked and coerced against the
op table, its output shapes computed, its weights claimed under a unique path, its IR node made.
"""
from __future__ import annotations

import math

from ..ir import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..ir import ops as O
from ..ir.graph import Node, Value
from ..ir.shapes import Size
from . import budget as B
from . import tensor_math, tying
from .context import MAX_NODES, InitValue, join
from .describe import attr_type, show_value, sig_str, op_signature
from .values import type_name


class OpApplyMixin:
    """Applying one op: attributes, shapes, weights, the IR node (mixed into Elaborator)."""

    # ------------------------------------------------------------------ op application
    def apply_op(self, od: O.OpDef, tensors, args, kwargs, as_name, ctx, span, path=None):
        tie = kwargs.pop("tie", None) if "tie" in kwargs and od.attr("tie") is None else None
        attrs = self.op_attrs(od, args, kwargs, span)
        lo, hi = (od.inputs, od.inputs) if isinstance(od.inputs, int) else od.inputs
        if od.inputs == 0:
            tensors = []
        if len(tensors) < lo or (hi is not None and len(tensors) > hi):
            want = str(lo) if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise ResdslError("type", f"`{od.name}` takes {want} tensor input(s), got {len(tensors)}", span)
        tensor_math.check_dtypes(od, tensors, span)  # a bool mask goes into `where` only
        try:
            outs, params = od.rule([t.shape for t in tensors], attrs)
        except O.OpError as e:
            raise ResdslError(e.kind, e.message, span, help=e.help,
                              label=" ".join(f"input {i}: {S.shape_str(t.shape)}" for i, t in enumerate(tensors))
                              if e.kind == "shape" else None) from None
        for shp in outs:
            for ax in shp:
                if isinstance(ax.size, int) and not 0 < ax.size <= O.MAX_DIM:
                    raise ResdslError("limit", f"`{od.name}` would make an axis of size {ax.size}", span,
                                      help="tensor sizes must be positive and below 2**31")
        if tie is not None:  # weight tying across ops (tying.py)
            params, attrs["_tie"] = tying.resolve(self, tie, od, params, ctx, self.kw_span("tie", span))
        needs_state = bool(params) or "stochastic" in od.traits or "module" in od.traits
        name = self.name_of(as_name, ctx)
        if path is None and needs_state:
            path = join(ctx.prefix, name or self.auto_name(ctx, od.name))
        elif path is None and name is not None:
            path = join(ctx.prefix, name)
        if needs_state:
            self.claim(path, od.name, params, attrs, span)
            self.param_specs.setdefault(path, params)
        node = Node(od.name, list(tensors), [], attrs, path, params, ctx.scope, span)
        base = path.replace(".", "_") if path else od.name
        node.outputs = [Value(self.fresh(base if len(outs) == 1 else f"{base}_{i}"), shp, node)
                        for i, shp in enumerate(outs)]
        if tensor_math.output_dtype(attrs):
            for v in node.outputs:
                v.dtype = tensor_math.output_dtype(attrs)
        self.nodes.append(node)
        self.budget.step(span, B.STATE_STEPS if params else B.OP_STEPS)
        if len(self.nodes) > MAX_NODES:
            raise ResdslError("limit", f"the network has over {MAX_NODES} ops", span,
                              help="lower repeat counts or depth")
        return node.outputs[0] if len(outs) == 1 else tuple(node.outputs)

    def claim(self, path, opname, params, attrs, span):
        sig = (opname, tuple(sorted((k, p.shape) for k, p in params.items())))
        if path in self.states:
            old_sig, old_span = self.states[path]
            if not any(s == "" or path == s or path.startswith(s + ".") for s in self.sharing):
                raise ResdslError("name", f"the name `{path}` is used twice", span,
                                  notes=[("first used here", old_span)],
                                  help="give one of them another name with `as`, or use `loop n shared` / `let` "
                                       "to share weights on purpose")
            if old_sig != sig:
                raise ResdslError("shape", f"shared weights `{path}` are used with a different shape", span,
                                  label=f"{old_sig[0]} {sig_str(old_sig)} vs {sig[0]} {sig_str(sig)}",
                                  notes=[("first used here", old_span)],
                                  help="a shared loop or instance must see the same input shapes each time")
        else:
            self.states[path] = (sig, span)
            self.budget.add_params(sum(math.prod(p.shape) for p in params.values() if p.kind == "param"), span)

    def op_attrs(self, od: O.OpDef, args, kwargs, span) -> dict:
        attrs = {}
        positional = [a for a in od.attrs]
        if len(args) > len(positional):
            raise ResdslError("type", f"`{od.name}` takes at most {len(positional)} positional argument(s), "
                                      f"{len(args)} given", span, help=f"signature: {op_signature(od)}")
        extra = next((a.name for a in od.attrs if a.type == "kwargs"), None)
        positional = [a for a in positional if a.type != "kwargs"]
        for a, v in zip(positional, args):
            attrs[a.name] = v
        for k, v in kwargs.items():
            ad = od.attr(k)
            if ad is None and extra is not None:
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be an int, got {show_value(v)}", span)
                attrs.setdefault(extra, {})[k] = v
                continue
            if ad is None:
                hint = did_you_mean(k, [a.name for a in od.attrs])
                raise ResdslError("type", f"`{od.name}` has no argument `{k}`", self.kw_span(k, span),
                                  help=hint or f"signature: {op_signature(od)}")
            if k in attrs:
                raise ResdslError("type", f"`{od.name}` got `{k}` twice", span)
            attrs[k] = v
        for a in od.attrs:
            if a.name not in attrs:
                if a.default is O.REQUIRED:
                    raise ResdslError("type", f"`{od.name}` needs `{a.name}`", span,
                                      help=f"signature: {op_signature(od)}")
                attrs[a.name] = a.default
            attrs[a.name] = self.coerce_attr(od, a, attrs[a.name], span)
        return attrs

    def coerce_attr(self, od, a: O.AttrDef, v, span):
        t = a.type
        bad = False
        if v is None and a.default is None:
            return None
        if t == "int":
            bad = not isinstance(v, int) or isinstance(v, bool)
        elif t == "num":
            bad = not isinstance(v, (int, float)) or isinstance(v, bool)
            v = v if bad else float(v)
        elif t == "bool":
            bad = not isinstance(v, bool)
        elif t == "str":
            bad = not isinstance(v, str)
        elif t == "ints":
            if isinstance(v, list):
                bad = not all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                v = tuple(v)
            else:
                bad = not isinstance(v, int) or isinstance(v, bool)
        elif t == "str_or_int":
            if isinstance(v, list):
                bad = not all(isinstance(x, int) for x in v)
                v = tuple(v)
            else:
                bad = not isinstance(v, (int, str)) or isinstance(v, bool)
        elif t == "shape":
            if not isinstance(v, list):
                bad = True
            else:
                bad = not all((isinstance(x, (int, Size)) and not isinstance(x, bool)) for x in v)
                v = tuple(v)
        elif t == "init":
            return self.init_spec(v, span)
        elif t == "kwargs":
            if v is not None and not isinstance(v, dict):  # `rearrange(..., sizes="a")`: the keyword itself
                raise ResdslError("type", f"`{od.name}` takes its sizes as keywords of their own, not "
                                          f"`{a.name}=`: got {type_name(v)} {show_value(v)}", self.kw_span(a.name, span),
                                  help=f"e.g. `{od.name}(\"n c (h p) w -> n (h w) (p c)\", p=2)`")
            for k, x in (v or {}).items():
                if not isinstance(x, int) or isinstance(x, bool):
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be an int, got {show_value(x)}",
                                      self.kw_span(k, span))
                if x < 1:
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be a positive int, got {show_value(x)}",
                                      self.kw_span(k, span))
            return dict(sorted((v or {}).items()))
        elif t == "any":
            if isinstance(v, list):
                v = tuple(v)
        if bad:
            raise ResdslError("type", f"`{od.name}` argument `{a.name}` must be {attr_type(t)}, got "
                                      f"{type_name(v)} {show_value(v)}", self.kw_span(a.name, span),
                              help=f"signature: {op_signature(od)}")
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, (int, float)):
                B.check_value(x, self.kw_span(a.name, span), f"`{od.name}` argument `{a.name}`")
        why = a.problem(v)  # the op table's legal values (ops.AttrDef.legal): one place for every op
        if why:
            raise ResdslError("value", f"`{od.name}` argument `{a.name}` {why}, got {show_value(v)}",
                              self.kw_span(a.name, span), help=f"signature: {op_signature(od)}")
        return v

    def init_spec(self, v, span):
        if v is None:
            return None
        if isinstance(v, InitValue):
            return v.spec
        if isinstance(v, tuple) and v and v[0] in O.INIT_KINDS:  # an op's declared default
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return ("constant", float(v))
        raise ResdslError("type", f"an init must be one of {', '.join(sorted(O.INIT_KINDS))}, got {show_value(v)}",
                          span, help="e.g. weight_init=zeros, weight_init=normal(0.02), "
                                     "weight_init=kaiming_normal(\"fan_out\")")
