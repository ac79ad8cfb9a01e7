"""Applying a primitive op (a mixin of the Elaborator): its arguments checked and coerced against the
op table, its output shapes computed, its weights claimed under a unique path, its IR node made.
"""
from __future__ import annotations

import math

from ..ir import shapes as S
from ..diagnostics import ResdslError, did_you_mean
from ..ir import ops as O
from ..ir import runsizes as RS
from ..ir.graph import Node, Value
from ..ir.ops.index import check_index_input
from ..ir.shapes import Size
from . import budget as B
from . import opmemo, tensor_math, tying
from .context import MAX_NODES, InitValue, join
from .describe import attr_type, show_value, sig_str, op_signature
from .values import Built, type_name


class OpApplyMixin:
    """Applying one op: attributes, shapes, weights, the IR node (mixed into Elaborator)."""

    # ------------------------------------------------------------------ op application
    def apply_op(self, od: O.OpDef, tensors, args, kwargs, as_name, ctx, span, path=None):
        tie = kwargs.pop("tie", None) if "tie" in kwargs and od.attr("tie") is None else None
        origin = (args[0] if args else kwargs.get("value")) if od.name == "buffer" else None
        mk = opmemo.key(od, tensors, args, kwargs) if tie is None and od.name not in ("buffer", "index") else None
        hit = opmemo.get(mk, od) if mk is not None else None  # the same op, arguments and shapes before
        attrs = self.op_attrs(od, args, kwargs, span) if hit is None else hit[0]
        if isinstance(origin, Built):  # the fn call that made a buffer's value (the torch file writes it)
            attrs["_origin"] = origin
        lo, hi = (od.inputs, od.inputs) if isinstance(od.inputs, int) else od.inputs
        if od.inputs == 0:
            tensors = []
        if len(tensors) < lo or (hi is not None and len(tensors) > hi):
            want = str(lo) if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise ResdslError("type", f"`{od.name}` takes {want} tensor input(s), got {len(tensors)}", span)
        tensor_math.check_dtypes(od, tensors, span)  # a bool mask goes into `where` only
        if od.name == "index":  # the indices: an int64 buffer, in range (ir/ops/index.py)
            why = check_index_input(tensors[0].shape, tensors[1].producer, attrs["dim"])
            if why:
                raise ResdslError("type", f"`index`: {why}", span)
        if hit is not None:
            outs, params = hit[1], hit[2]
        else:
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
            if mk is not None:
                opmemo.put(mk, od, attrs, outs, params)
        if attrs.get("_need") and RS.needs_runtime(attrs["_need"]):  # sizes read at run time (ir/runsizes.py)
            tensors = list(tensors) + self.size_sources(od, attrs, tensors, span)
        needs_state = bool(params) or "stochastic" in od.traits or "module" in od.traits
        name = self.name_of(as_name, ctx)
        if path is None and needs_state:
            path = join(ctx.prefix, name or self.auto_name(ctx, od.name))
        elif path is None and name is not None:
            path = join(ctx.prefix, name)
        pending = None
        if tie is not None or (ctx.tie is not None and params):  # weight tying across ops (tying.py)
            tspan = self.kw_span("tie", span) if tie is not None else span
            if tie is not None and not params:
                tying.tie_text(self, tie, ctx, tspan)
            params, ties, pending = tying.resolve(self, tie, od, params, ctx, tspan, path, attrs)
            if ties:
                attrs["_tie"] = ties
        if needs_state:
            self.claim(path, od.name, params, attrs, span)
            self.param_specs.setdefault(path, params)
        node = Node(od.name, list(tensors), [], attrs, path, params, ctx.scope, span)
        if params:
            self.node_at.setdefault(path, node)
        if attrs.get("_tie"):
            tying.record(self, node, attrs["_tie"])
        if pending is not None:
            self.pending_ties.append((node, pending))
        base = path.replace(".", "_") if path else od.name
        node.outputs = [Value(self.fresh(base if len(outs) == 1 else f"{base}_{i}"), shp, node)
                        for i, shp in enumerate(outs)]
        if tensor_math.output_dtype(attrs):
            for v in node.outputs:
                v.dtype = tensor_math.output_dtype(attrs)
        if od.name in ("buffer", "index"):  # a constant's dtype; a gather keeps its table's
            for v in node.outputs:
                v.dtype = attrs["_dtype"] if od.name == "buffer" else tensors[0].dtype
        self.nodes.append(node)
        self.budget.step(span, B.STATE_STEPS if params else B.OP_STEPS)
        if len(self.nodes) > MAX_NODES:
            raise ResdslError("limit", f"the network has over {MAX_NODES} ops", span,
                              help="lower repeat counts or depth")
        return node.outputs[0] if len(outs) == 1 else tuple(node.outputs)

    def size_sources(self, od, attrs, tensors, span) -> list:
        extra = RS.sources(attrs["_need"], tensors)
        if extra is None:
            missing = sorted(RS.symbols_of(attrs["_need"]))
            raise ResdslError("shape", f"`{od.name}` needs the size(s) {', '.join(missing)} at run time, and no "
                                       f"tensor before it has them", span,
                              help="give the size from a tensor that has that axis (`h=x.H / 4`)")
        attrs["_src"] = len(extra)
        return extra

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
            self.check_nesting(path, span)
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
                v = _whole(v)
                if not isinstance(v, (int, Size)) or isinstance(v, bool):
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
                v = [_whole(x) for x in v]
                bad = not all((isinstance(x, (int, Size)) and not isinstance(x, bool)) for x in v)
                v = tuple(v)
        elif t == "sizes":  # split sizes: ints or symbolic sizes (`x.C / 2`), one or a list
            items = [_whole(x) for x in (v if isinstance(v, list) else [v])]
            v = items if isinstance(v, list) else items[0]
            bad = not items or not all(isinstance(x, (int, Size)) and not isinstance(x, bool) for x in items)
            if not bad and any(isinstance(x, int) and x < 1 for x in items):
                raise ResdslError("value", f"`{od.name}` argument `{a.name}` must be at least 1 (each size), got "
                                           f"{show_value(v)}", self.kw_span(a.name, span))
            v = tuple(items) if isinstance(v, list) else v
        elif t == "init":
            return self.init_spec(v, span)
        elif t == "kwargs":
            if v is not None and not isinstance(v, dict):  # `rearrange(..., sizes="a")`: the keyword itself
                raise ResdslError("type", f"`{od.name}` takes its sizes as keywords of their own, not "
                                          f"`{a.name}=`: got {type_name(v)} {show_value(v)}", self.kw_span(a.name, span),
                                  help=f"e.g. `{od.name}(\"n c (h p) w -> n (h w) (p c)\", p=2)`")
            v = {k: _whole(x) for k, x in (v or {}).items()}
            for k, x in v.items():
                if not isinstance(x, (int, Size)) or isinstance(x, bool):
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be an int or a size such as "
                                              f"`x.H / 4`, got {show_value(x)}", self.kw_span(k, span))
                if isinstance(x, int) and x < 1:
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


def _whole(x):
    """A size computed with `/` (`x.C / 2` of a static axis is 3.0): a whole float is that int."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 2 ** 62:
        return int(x)
    return x
