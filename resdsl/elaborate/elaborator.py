"""AST -> IR: scopes, parameters, compile-time expressions, repeat/loop/if, shapes.

Everything here runs at compile time; tensors are the only run-time values and
appear as IR :class:`Value` objects. Every op application is shape-checked when
it is created, so a mismatch is reported at its source position.
"""
from __future__ import annotations

import math
import re

from .. import shapes as S
from ..diagnostics import ResdslError, Span, did_you_mean
from ..frontend import ast
from ..frontend.parser import parse_expr
from ..ir import ops as O
from ..ir.graph import Graph, Node, Scope, Value
from ..shapes import Axis, Size
from . import tying
from . import budget as B
from .exprs import ExprMixin
from .loader import Program
from .names import segment_problem
from .values import CALLABLE, AmbiguousIn, BlockRef, Builtin, Fn, Instance, MergeSpec, OpRef, Partial, type_name

MAX_REPEAT = 10_000
MAX_RECURSION = 64
MAX_NODES = B.MAX_OPS  # the other bounds on elaboration work live in budget.py


class Ctx:
    """Where a statement is elaborated: scope, names, the current tensor, `in`."""

    def __init__(self, scope: Scope, prefix: str, env: dict, current=None, in_value=None, module=None,
                 counters=None):
        self.scope = scope
        self.prefix = prefix
        self.env = env
        self.current = current
        self.in_value = in_value
        self.module = module
        self.counters = counters if counters is not None else {}
        self.outputs = []  # (name, Value) from `output`
        self.inputs = []   # declared block inputs

    def sub(self, scope=None, prefix=None, env=None, current=None, in_value=None, counters=None):
        c = Ctx(scope or self.scope, self.prefix if prefix is None else prefix,
                self.env if env is None else env, current, in_value, self.module,
                self.counters if counters is None else counters)
        return c

    def lookup(self, name):
        if name in self.env:
            return self.env[name]
        return self.module.names.get(name)

    def has(self, name) -> bool:
        """Bound at all (a name may be bound to none: `v: Tensor? = none`)."""
        return name in self.env or name in self.module.names

    def all_names(self):
        return list(self.env) + list(self.module.names)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class Elaborator(ExprMixin):
    def __init__(self, program: Program, shape_overrides: dict | None = None):
        self.program = program
        self.nodes: list[Node] = []
        self.value_names: dict[str, int] = {}
        self.states: dict[str, tuple] = {}  # path -> (op signature, span)
        self.param_specs: dict[str, dict] = {}  # path -> {local: ParamSpec}, for `tie=`
        self.sharing: list[str] = []  # path prefixes whose state may be reused
        self.depth = 0
        self.shape_overrides = shape_overrides or {}
        self.budget = B.Budget(getattr(program, "source_bytes", 0))
        self.used_names: set[str] = set()  # every value name given out (fresh() never repeats one)
        self.nest = 0  # regions and blocks open now (bounded by budget.MAX_NEST)
        self.last_span = None  # the statement being elaborated, for errors that have no better place

    # ------------------------------------------------------------------ entry
    def network(self, name: str | None, overrides: dict | None = None) -> Graph:
        try:
            return self._network(name, overrides)
        except RecursionError:
            # Python's stack ran out before any budget did (deeply nested regions inside recursive
            # blocks): say where, like every other limit
            top = getattr(self.program, "root_source", None)
            where = self.last_span or (Span(top, 1, 1, 1, 1) if top is not None else None)
            raise ResdslError("limit", "the description nests too deeply to elaborate", where,
                              help=f"regions and blocks may nest at most {B.MAX_NEST} deep") from None

    def _network(self, name: str | None, overrides: dict | None = None) -> Graph:
        nets = self.program.networks
        top = getattr(self.program, "root_source", None)
        if not nets:
            raise ResdslError("name", f"{self.program.root.path} defines no network",
                              Span(top, 1, 1, 1, 1) if top is not None else None,
                              help="add `network Name(...) { input x: [N, 3, H, W] ... }`")
        if name is None:
            if len(nets) > 1:
                second = list(nets.values())[1]
                where = second.defn.span if isinstance(second, BlockRef) else second[1].span \
                    if isinstance(second, tuple) else None
                raise ResdslError("name", f"{self.program.root.path} defines {len(nets)} networks; choose one",
                                  where,
                                  help="pass --network NAME (network= in the API); one of: " + ", ".join(nets))
            name = next(iter(nets))
        if name not in nets:
            hint = did_you_mean(name, nets)
            raise ResdslError("name", f"no network `{name}` in {self.program.root.path}",
                              help=(hint + " " if hint else "") + "networks here: " + ", ".join(nets))
        target = nets[name]
        overrides = dict(overrides or {})
        if isinstance(target, tuple):  # alias: network resnet18 = ResNet(BasicBlock, [2, 2, 2, 2])
            _, alias, env = target
            ctx = Ctx(None, "", {}, module=env)
            val = self.evaluate(alias.value, ctx)
            if not isinstance(val, Partial) or not isinstance(val.callee, BlockRef):
                raise ResdslError("type", f"network `{name}` must be defined as a call of a network",
                                  alias.span, help=f"e.g. `network {name} = ResNet(BasicBlock, [2, 2, 2, 2])`")
            ref, args, kwargs = val.callee, list(val.args), dict(val.kwargs)
            span = alias.span
        else:
            ref, args, kwargs, span = target, [], {}, target.defn.span
        if not ref.defn.is_network:
            raise ResdslError("type", f"`{ref.name}` is a block, not a network", span)
        params = {p.name for p in ref.defn.params}
        for k, v in overrides.items():
            if k not in params:
                hint = did_you_mean(k, params)
                raise ResdslError("name", f"network `{name}` has no parameter `{k}`",
                                  help=(hint + " " if hint else "") + "parameters: " + ", ".join(sorted(params)))
            kwargs[k] = v
        # positional alias arguments that --set overrides
        names = [p.name for p in ref.defn.params]
        for i, v in list(enumerate(args)):
            if names[i] in overrides:
                args[i] = overrides[names[i]]
                kwargs.pop(names[i])
        root = Scope("network", name, "", None, ref.defn.span, {"block": ref.name})
        bound = self.bind_params(ref, args, kwargs, span)
        ctx = Ctx(root, "", bound, module=ref.module)
        try:
            self.body(ref.defn.body, ctx)
        except ResdslError as err:
            compress_frames(err)
            raise
        inputs = ctx.inputs
        if not inputs:
            raise ResdslError("shape", f"network `{ref.name}` declares no input", ref.defn.span,
                              help="add `input x: [N, 3, H, W]` as its first statement")
        if ctx.outputs:
            outputs = ctx.outputs
        elif isinstance(ctx.current, tuple):
            raise ResdslError("shape", f"network `{ref.name}` ends in {len(ctx.current)} tensors", self.last_span,
                              help="name them and list them: `a, b = ...` then `output a, b`")
        elif ctx.current is not None:
            outputs = [(None, ctx.current)]
        else:
            raise ResdslError("shape", f"network `{ref.name}` computes nothing", ref.defn.span)
        graph = Graph(name, [v for v in inputs], [v for _, v in outputs], self.nodes, root,
                      [n or "out" for n, _ in outputs])
        if len(graph.outputs) == 1 and outputs[0][0] is None:
            graph.output_names = ["out"]
        root.info["params"] = {k: v for k, v in bound.items() if not isinstance(v, CALLABLE)}
        graph.verify()
        return graph

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
            t = f": {_type_str(p.type)}" if p.type else ""
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
                v = [self.check_type(x, t.args[0], what + " item", span) for x in v]
        elif name in ("Block", "block"):
            ok = isinstance(v, CALLABLE)
        elif name in ("any", "Any"):
            ok = True
        else:
            raise ResdslError("type", f"unknown type `{name}`", t.span,
                              help="types are int, float, bool, str, list[T], Block, Tensor, any "
                                   "(`T?` also allows none)")
        if not ok:
            raise ResdslError("type", f"{what} must be {_type_str(t)}, got {type_name(v)} {_show(v)}", span)
        return v

    # ------------------------------------------------------------------ statements
    def body(self, body: ast.Body, ctx: Ctx):
        for st in body.stmts:
            self.stmt(st, ctx)
        return ctx.current

    def stmt(self, st, ctx: Ctx):
        self.budget.step(st.span)
        self.last_span = st.span
        if isinstance(st, ast.ChainStmt):
            ctx.current = self.chain(st.chain, ctx, start=True)
        elif isinstance(st, ast.Assign):
            v = self.chain(st.chain, ctx, start=True)
            if len(st.targets) == 1:
                self.bind_tensor(ctx, st.targets[0], v, st.span)
                ctx.current = v if isinstance(v, Value) else ctx.current
            else:
                if not isinstance(v, tuple) or len(v) != len(st.targets):
                    n = len(v) if isinstance(v, tuple) else 1
                    raise ResdslError("type", f"{len(st.targets)} names on the left, {n} tensor(s) on the right",
                                      st.span)
                for t, x in zip(st.targets, v):
                    self.bind_tensor(ctx, t, x, st.span)
        elif isinstance(st, ast.Let):
            v = self.evaluate(st.value, ctx)
            if isinstance(v, Partial) and isinstance(v.callee, (BlockRef, OpRef)):
                v = Instance(v, join(ctx.prefix, st.name))
            ctx.env[st.name] = v
        elif isinstance(st, ast.Input):
            self.input_stmt(st, ctx)
        elif isinstance(st, ast.Output):
            for item in st.items:
                v = self.chain(item.chain, ctx, start=True)
                if not isinstance(v, Value):
                    raise ResdslError("type", f"`output` needs a tensor, got {type_name(v)}", item.span)
                ctx.outputs.append((item.name, v))
                if item.name:
                    ctx.env[item.name] = v
        elif isinstance(st, ast.For):
            it = self.evaluate(st.iterable, ctx)
            if not isinstance(it, list):
                raise ResdslError("type", f"`for` needs a list, got {type_name(it)}", st.iterable.span)
            for x in it:
                self.budget.step(st.span)
                self.bind_targets(ctx.env, st.targets or (st.var,), x, st.span)
                self.body(st.body, ctx)
        elif isinstance(st, ast.FnDef):
            ctx.env[st.name] = Fn(st, ctx.module, ctx.env)
        elif isinstance(st, ast.If):
            node = st
            while node is not None:
                if isinstance(node, ast.Body):
                    self.body(node, ctx)
                    break
                if self.truth(self.evaluate(node.cond, ctx), node.cond.span):
                    self.body(node.then, ctx)
                    break
                node = node.other
        else:  # pragma: no cover - the grammar has no other statements
            raise ResdslError("syntax", f"unsupported statement {type(st).__name__}", st.span)

    def bind_tensor(self, ctx, name, v, span):
        if isinstance(v, tuple) and v and all(isinstance(x, Value) for x in v):
            ctx.env[name] = v  # a list of tensors (`parts = split(w)`): index it, or pass it to concat
            return
        if not isinstance(v, Value):
            raise ResdslError("type", f"`{name} = ...` needs a tensor on the right, got {type_name(v)}", span,
                              help=f"use `let {name} = ...` for compile-time values")
        ctx.env[name] = v

    def input_stmt(self, st: ast.Input, ctx: Ctx):
        if ctx.scope is None or ctx.scope.kind not in ("network", "block"):
            raise ResdslError("syntax", "`input` declares the inputs of a network or block; it cannot stand "
                                        "inside a region or group", st.span,
                              help="move the `input` line to the top of the network or block")
        for d in st.decls:
            if d.shape is None:
                if ctx.scope.kind == "network":
                    raise ResdslError("shape", f"network input `{d.name}` needs a shape", d.span,
                                      help=f"e.g. `input {d.name}: [N, 3, H, W]`")
                ctx.inputs.append(d)
                continue
            axes = []
            for a in d.shape:
                if a.size is None:
                    size = self.shape_overrides.get(a.name, Size.sym(a.name))
                    axes.append(Axis(size, a.name))
                else:
                    v = self.evaluate(a.size, ctx)
                    if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > O.MAX_DIM:
                        raise ResdslError("shape", f"axis size must be a positive int below 2**31, got {_show(v)}",
                                          a.span)
                    axes.append(Axis(v, a.name))
            val = Value(self.fresh(d.name), tuple(axes))
            ctx.inputs.append(val)
            ctx.env[d.name] = val
            ctx.current = val

    # ------------------------------------------------------------------ chains
    def chain(self, chain: ast.Chain, ctx: Ctx, start: bool):
        cur = ctx.current if start else None
        first = True
        result = None
        for link in chain.links:
            result = self.link(link, ctx, cur, piped=not first, first=first)
            if isinstance(result, Value):
                cur = result
            elif isinstance(result, tuple):
                cur = result
            first = False
        if len(chain.links) == 1 and isinstance(result, (Value, tuple)):
            return result
        return cur if cur is not None else result

    def link(self, link: ast.Link, ctx: Ctx, cur, piped: bool, first: bool):
        e = link.expr
        if isinstance(e, (ast.Residual, ast.Parallel, ast.Repeat, ast.Loop)):
            return self.region(e, ctx, self.need(cur, e.span, "region"))
        if isinstance(e, ast.Body):
            return self.group(e, link.as_name, ctx, self.need(cur, e.span, "group"))
        if isinstance(e, ast.Chain):
            return self.chain(e, ctx, start=False)
        if isinstance(e, (ast.Call, ast.Name)):
            self.check_chain_name(e.func if isinstance(e, ast.Call) else e, ctx)
        if isinstance(e, ast.Call):
            callee = self.evaluate(e.func, ctx)
            if isinstance(callee, Builtin) and callee.name in O.OPS:
                callee = OpRef(O.OPS[callee.name])  # in a chain, `sum(dim=1)` is the tensor op
            if isinstance(callee, (Builtin, Fn)):
                return self.evaluate(e, ctx)
            if not isinstance(callee, CALLABLE):
                raise ResdslError("type", f"`{_expr_str(e.func)}` is a {type_name(callee)}, not an op or block",
                                  e.func.span)
            tensors, args, kwargs = self.eval_args(e.args, ctx, callee)
            # the current tensor goes first when piped, when no tensor is given, or when an op
            # needs one more tensor than given (`add(pos_embedding)` at a statement's start)
            if (piped or not tensors or _min_inputs(callee) > len(tensors)) and not takes_no_input(callee):
                tensors = [self.need(cur, e.span, _expr_str(e.func))] + tensors
            return self.apply(callee, tensors, args, kwargs, link.as_name, ctx, e.span)
        v = self.evaluate(e, ctx)
        if isinstance(v, Builtin) and v.name in O.OPS:
            v = OpRef(O.OPS[v.name])  # in a chain, `-> abs` / `-> sqrt` / `-> log` is the tensor op
        if isinstance(v, list) and v and all(isinstance(x, Value) for x in v):
            v = tuple(v)  # `ys = [(o -> relu) for o in outs]`: a list of tensors
        if isinstance(v, (Value, tuple)) and not isinstance(v, CALLABLE):
            if piped:
                raise ResdslError("type", f"cannot pipe a tensor into the tensor `{_expr_str(e)}`", e.span,
                                  help="a chain is `source -> op -> op`; only its first element may be a tensor")
            if link.as_name is not None:
                raise ResdslError("type", "`as` names an op or block, not a tensor", link.as_name.span)
            return v
        if isinstance(v, CALLABLE):
            ins = [] if takes_no_input(v) else [self.need(cur, e.span, _expr_str(e))]
            return self.apply(v, ins, [], {}, link.as_name, ctx, e.span)
        raise ResdslError("type", f"`{_expr_str(e)}` is a {type_name(v)} {_show(v)}; a chain needs ops, blocks "
                                  f"or tensors", e.span)

    def check_chain_name(self, e, ctx):
        """An unknown name where a chain wants an op: suggest ops, blocks and tensors, never a
        compile-time function or an initialiser (`minimum` is not `min`, `const` not `constant`)."""
        if not isinstance(e, ast.Name) or ctx.has(e.id):
            return
        if e.id in O.INIT_KINDS:
            raise ResdslError("type", f"`{e.id}` is an initialiser, not an op", e.span,
                              help=f"use it as an argument: weight_init={e.id}")
        names = [k for k in ctx.all_names() if isinstance(ctx.lookup(k), CALLABLE + (Value, tuple))]
        hint = did_you_mean(e.id, names)
        raise ResdslError("name", f"unknown name `{e.id}`", e.span,
                          help=hint or "the ops are listed in docs/language.md (Primitive ops); "
                                       "blocks come from this file or an `import`")

    def need(self, cur, span, what):
        if cur is None:
            raise ResdslError("shape", f"`{what}` has no input tensor here", span,
                              help="declare `input x: [...]` first, or start the chain from a tensor: `x -> ...`")
        if isinstance(cur, tuple):
            raise ResdslError("type", f"`{what}` gets {len(cur)} tensors; name them first", span,
                              help="write `a, b = ...` and pass them explicitly")
        return cur

    def eval_args(self, args, ctx, callee=None):
        """Evaluate call arguments: (tensor args, other positional args, keyword args).

        A positional list of tensors spreads into the tensor inputs (`concat(outs)`, or
        `Fuse(8, parts)` for a block with `input a, b`), except for a block that takes one
        tensor: there it is a value for the next parameter, as the keyword form binds it.
        An empty list spreads to nothing among the tensors of an op that takes any number
        (`concat(a, b, kids)` with `kids = []`).

        Keeps the spans of the keyword arguments in `self.arg_spans`, so an error about
        one argument points at it (read right after the call, before other calls)."""
        tensors, pos, kw = [], [], {}
        spans = {}
        keep_lists = callee is not None and _is_block(callee) and _declared_inputs(callee) == 0
        empties = 0
        for a in args:
            if isinstance(a.value, ast.Chain):
                v = self.chain(a.value, ctx, start=False)
            else:
                v = self.evaluate(a.value, ctx)
            if a.name is None:
                if isinstance(v, Value):
                    tensors.append(v)
                elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Value) for x in v):
                    if keep_lists:
                        pos.append(list(v))
                    else:
                        tensors.extend(v)  # a list of tensors spreads: concat(outs)
                elif isinstance(v, list) and not v and _variadic(callee):
                    empties += 1
                elif pos is not None:
                    pos.append(v)
            else:
                if a.name in kw:
                    raise ResdslError("type", f"argument `{a.name}` given twice", a.span)
                kw[a.name] = v
                spans[a.name] = a.span
        if empties and not tensors:  # `concat(kids)` with nothing at all: say so, not "dim"
            raise ResdslError("type", f"`{_name(callee)}` gets an empty list of tensors", args[0].span,
                              help="give it at least one tensor")
        self.arg_spans = spans
        return tensors, pos, kw

    def kw_span(self, name, span):
        return getattr(self, "arg_spans", {}).get(name, span)

    # ------------------------------------------------------------------ application
    def apply(self, callee, tensors, args, kwargs, as_name, ctx: Ctx, span, path=None, scope_kind="block"):
        if isinstance(callee, Instance):
            if as_name is not None:
                raise ResdslError("name", f"`{callee.path}` is an instance; it already has its name", as_name.span)
            callee.uses += 1
            shared = callee.uses > 1
            if shared:
                self.sharing.append(callee.path)
            try:
                p = callee.partial
                return self.apply(p.callee, tensors, list(p.args) + list(args), {**p.kwargs, **kwargs}, None,
                                  ctx, span, path=callee.path)
            finally:
                if shared:
                    self.sharing.pop()
        if isinstance(callee, Partial):
            return self.apply(callee.callee, tensors, list(callee.args) + list(args), {**callee.kwargs, **kwargs},
                              as_name, ctx, span, path=path)
        if isinstance(callee, OpRef):
            return self.apply_op(callee.opdef, tensors, args, kwargs, as_name, ctx, span, path)
        if isinstance(callee, BlockRef):
            return self.apply_block(callee, tensors, args, kwargs, as_name, ctx, span, path)
        raise ResdslError("type", f"cannot apply a {type_name(callee)}", span)

    def name_of(self, as_name, ctx) -> str | None:
        if as_name is None:
            return None
        out = []
        for part in as_name.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                v = self.evaluate(part, ctx)
                if not isinstance(v, (int, str)) or isinstance(v, bool):
                    raise ResdslError("type", f"a name piece must be an int or str, got {type_name(v)}",
                                      as_name.span)
                out.append(str(v))
        name = "".join(out)
        for seg in name.split("."):
            why = segment_problem(seg)
            if why is not None:
                raise ResdslError("name", f"`{name}` is not a valid name: it {why}", as_name.span,
                                  help="a quoted name may hold any characters PyTorch accepts in a module name "
                                       "(`as \"block1-0\"`); `.` separates its segments (`as \"convs.{i}\"`)")
        return name

    def auto_name(self, ctx, base) -> str:
        key = (ctx.prefix, base)
        k = ctx.counters.get(key, 0)
        while join(ctx.prefix, f"{base}_{k}") in self.states and not self.sharing:
            k += 1  # `conv(4, 1) as conv_1 -> conv(4, 1) -> conv(4, 1)`: skip the name the author took
        ctx.counters[key] = k + 1
        return f"{base}_{k}"

    def fresh(self, base: str) -> str:
        if not (base.isascii() and base.isidentifier()):  # the common case skips the regex
            base = re.sub(r"[^A-Za-z0-9_]", "_", base) or "v"
        if base[0].isdigit():
            base = "_" + base
        n = self.value_names.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in self.used_names:  # `relu -> relu -> conv(4, 1) as relu_1`: another base made it
            n += 1
            name = f"{base}_{n}"
        self.value_names[base] = n + 1
        self.used_names.add(name)
        return name

    def apply_op(self, od: O.OpDef, tensors, args, kwargs, as_name, ctx, span, path=None):
        tie = kwargs.pop("tie", None) if "tie" in kwargs and od.attr("tie") is None else None
        attrs = self.op_attrs(od, args, kwargs, span)
        lo, hi = (od.inputs, od.inputs) if isinstance(od.inputs, int) else od.inputs
        if od.inputs == 0:
            tensors = []
        if len(tensors) < lo or (hi is not None and len(tensors) > hi):
            want = str(lo) if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise ResdslError("type", f"`{od.name}` takes {want} tensor input(s), got {len(tensors)}", span)
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
        needs_state = bool(params) or "stochastic" in od.traits
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
                                  label=f"{old_sig[0]} {_sig_str(old_sig)} vs {sig[0]} {_sig_str(sig)}",
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
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be an int, got {_show(v)}", span)
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
            for k, x in (v or {}).items():
                if x < 1:
                    raise ResdslError("type", f"`{od.name}` size `{k}` must be a positive int, got {_show(x)}",
                                      self.kw_span(k, span))
            return dict(sorted((v or {}).items()))
        elif t == "any":
            if isinstance(v, list):
                v = tuple(v)
        if bad:
            raise ResdslError("type", f"`{od.name}` argument `{a.name}` must be {_attr_type(t)}, got "
                                      f"{type_name(v)} {_show(v)}", self.kw_span(a.name, span),
                              help=f"signature: {op_signature(od)}")
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, (int, float)):
                B.check_value(x, self.kw_span(a.name, span), f"`{od.name}` argument `{a.name}`")
        why = a.problem(v)  # the op table's legal values (ops.AttrDef.legal): one place for every op
        if why:
            raise ResdslError("value", f"`{od.name}` argument `{a.name}` {why}, got {_show(v)}",
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
        raise ResdslError("type", f"an init must be one of {', '.join(sorted(O.INIT_KINDS))}, got {_show(v)}",
                          span, help="e.g. weight_init=zeros, weight_init=normal(0.02), "
                                     "weight_init=kaiming_normal(\"fan_out\")")

    def apply_block(self, ref: BlockRef, tensors, args, kwargs, as_name, ctx: Ctx, span, path=None):
        self.budget.step(span, B.BLOCK_STEPS)
        with self.nested(span):
            return self._apply_block(ref, tensors, args, kwargs, as_name, ctx, span, path)

    def nested(self, span):
        """Count one more open region or block; past budget.MAX_NEST it is an error at `span`."""
        return _Nest(self, span)

    def _apply_block(self, ref: BlockRef, tensors, args, kwargs, as_name, ctx: Ctx, span, path=None):
        self.depth += 1
        if self.depth > MAX_RECURSION:
            raise ResdslError("limit", f"blocks nest deeper than {MAX_RECURSION} (recursion in `{ref.name}`?)",
                              span, help="make the recursion stop: guard the recursive call with "
                                         "`if depth > 1 { ... }`")
        try:
            tensors, kwargs = _tensor_params(ref, tensors, len(args), kwargs)
            env = self.bind_params(ref, args, kwargs, span)
            if path is None:
                name = self.name_of(as_name, ctx)
                path = join(ctx.prefix, name or self.auto_name(ctx, snake(ref.name)))
            label = ref.name
            scope = ctx.scope.child("block", label, path, span, block=ref.name,
                                    args={k: v for k, v in env.items()
                                          if not isinstance(v, CALLABLE + (Value,)) and v is not None})
            scope.info["defaults"] = self.param_defaults(ref, env)  # diagrams show non-default args
            bctx = Ctx(scope, path, env, None, None, ref.module, counters={})
            decl_inputs = [s for s in ref.defn.body.stmts if isinstance(s, ast.Input)]
            n_declared = sum(len(s.decls) for s in decl_inputs)
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

    # ------------------------------------------------------------------ regions
    def region(self, e, ctx: Ctx, x: Value):
        with self.nested(e.span):
            return self._region(e, ctx, x)

    def _region(self, e, ctx: Ctx, x: Value):
        if isinstance(e, ast.Residual):
            return self.residual(e, ctx, x)
        if isinstance(e, ast.Parallel):
            return self.parallel(e, ctx, x)
        if isinstance(e, ast.Repeat):
            return self.repeat(e, ctx, x)
        return self.loop(e, ctx, x)

    def group(self, body: ast.Body, as_name, ctx, x):
        name = self.name_of(as_name, ctx)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("group", name or "group", prefix, body.span)
        g = ctx.sub(scope=scope, prefix=prefix, env=dict(ctx.env), current=x, in_value=x,
                    counters={} if name else None)
        with self.nested(body.span):
            out = self.body(body, g)
        return out

    def region_args(self, args, ctx, allowed, what, span):
        _, pos, kw = self.eval_args(args, ctx, ) if args else ([], [], {})
        if pos:
            raise ResdslError("type", f"`{what}` takes keyword arguments only", span,
                              help=f"e.g. {what}(merge=add)")
        for k in kw:
            if k not in allowed:
                hint = did_you_mean(k, allowed)
                raise ResdslError("type", f"`{what}` has no option `{k}`", span,
                                  help=hint or "options: " + ", ".join(allowed))
        return kw

    def residual(self, e: ast.Residual, ctx: Ctx, x: Value):
        # `pre = chain`: a shared pre-activation, computed once from `in`; it feeds the body and
        # the shortcut, while an identity skip still carries `in` itself (pre-act ResNet, WRN)
        pre = next((a for a in e.args if a.name == "pre"), None)
        args = tuple(a for a in e.args if a.name != "pre")
        if e.cond is not None:
            cctx = ctx.sub(env=dict(ctx.env), current=x, in_value=x)
            if not self.truth(self.evaluate(e.cond, cctx), e.cond.span):
                # `residual if c { body }` with c false: the body alone (after `pre`), in the same names
                p = self.pre_activation(pre, ctx, x, ctx.scope)
                return self.body(e.body, ctx.sub(env=dict(ctx.env), current=p, in_value=x))
        opts = self.region_args(args, ctx, ("merge", "drop_path", "pre"), "residual", e.span)
        merge = self.merge_spec(opts.get("merge", "add"), e.span)
        dp = opts.get("drop_path", 0.0)
        if not isinstance(dp, (int, float)) or isinstance(dp, bool) or not 0 <= dp < 1:
            raise ResdslError("type", f"drop_path must be a number in [0, 1), got {_show(dp)}", e.span)
        as_name = self.name_of(e.as_name, ctx)
        scope = ctx.scope.child("residual", "residual", ctx.prefix, e.span, merge=merge.kind,
                                merge_arg=merge.arg, drop_path=float(dp))
        p = self.pre_activation(pre, ctx, x, scope)
        bctx = ctx.sub(scope=scope, env=dict(ctx.env), current=p, in_value=x)
        body_out = self.body(e.body, bctx)
        if not isinstance(body_out, Value):
            raise ResdslError("shape", "the residual body computes nothing", e.span)
        skip = x
        take = True
        if e.shortcut is not None:
            if e.shortcut_cond is not None:
                sc_ctx = ctx.sub(env=dict(ctx.env), current=x, in_value=x)
                take = self.truth(self.evaluate(e.shortcut_cond, sc_ctx), e.shortcut_cond.span)
            if take:
                sname = as_name or "shortcut"
                sprefix = join(ctx.prefix, sname)
                sscope = scope.child("shortcut", sname, sprefix, e.shortcut_span)
                sctx = ctx.sub(scope=sscope, prefix=sprefix, env=dict(ctx.env), current=p, in_value=x, counters={})
                # a named shortcut of one unnamed op or block gives it the name (`proj.weight`)
                skip = self.single_call(e.shortcut, sctx, p, sprefix, ops=True) if as_name else None
                if skip is None:
                    skip = self.body(e.shortcut, sctx)
        scope.info["has_shortcut"] = e.shortcut is not None and take
        mctx = ctx.sub(scope=scope, current=None)
        holder = as_name if e.shortcut is None else None
        out = self.merge(merge, body_out, skip, mctx, e.span, float(dp), holder, residual=True)
        scope.info["out"] = out
        return out

    def pre_activation(self, arg, ctx: Ctx, x: Value, scope):
        """The `pre = ...` chain of a residual applied to `x` in the enclosing names, or `x`."""
        if arg is None:
            return x
        chain = arg.value if isinstance(arg.value, ast.Chain) else \
            ast.Chain(arg.value.span, (ast.Link(arg.value.span, arg.value, None),))
        out = self.chain(chain, ctx.sub(scope=scope, env=dict(ctx.env), current=x, in_value=x), start=True)
        if not isinstance(out, Value):
            raise ResdslError("type", f"`pre` must give one tensor, got {type_name(out)}", arg.span,
                              help="e.g. residual(pre = bn as norm1 -> relu) { ... }")
        return out

    def merge_spec(self, v, span) -> MergeSpec:
        if isinstance(v, MergeSpec):
            return v
        if isinstance(v, str) and v in ("add", "concat", "mean", "mul", "learned", "rezero", "layer_scale"):
            return MergeSpec("learned" if v == "rezero" else v, None)
        if isinstance(v, OpRef) and v.name in ("add", "concat", "mean", "mul", "layer_scale"):
            return MergeSpec(v.name, None)
        if isinstance(v, Partial) and isinstance(v.callee, OpRef) and v.callee.name in ("scale", "layer_scale",
                                                                                          "concat"):
            arg = v.args[0] if v.args else next(iter(v.kwargs.values()), None)
            return MergeSpec(v.callee.name, arg)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return MergeSpec("scale", float(v))
        raise ResdslError("type", f"unknown merge {_show(v)}", span,
                          help="merges: add, concat, mean, mul, scale(0.1), learned, layer_scale(1e-6)")

    def merge(self, m: MergeSpec, body, skip, ctx, span, dp=0.0, holder=None, residual=False):
        """out = merge(skip, transform(body)); transform = scale | learned | layer_scale, then drop_path."""
        def op(name, tensors, args=(), kwargs=None, as_=None, path=None):
            return self.apply_op(O.OPS[name], tensors, list(args), kwargs or {}, as_, ctx, span, path=path)

        if m.kind == "scale":
            body = op("scale", [body], [m.arg])
        elif m.kind == "learned":
            body = op("scalar_mul", [body], [0.0], path=join(ctx.prefix, holder) if holder else None)
        elif m.kind == "layer_scale":
            init = 1e-5 if m.arg is None else m.arg
            body = op("layer_scale", [body], [init], path=join(ctx.prefix, holder) if holder else None)
        if dp:
            body = op("drop_path", [body], [dp])
        kind = "add" if m.kind in ("scale", "learned", "layer_scale") else m.kind
        if kind in ("add", "mean", "mul") and not S.same_sizes(body.shape, skip.shape):
            if kind == "mul" and (not residual or _gates(body, skip)):
                pass  # a gate that broadcasts onto the skip, e.g. [N, C, 1, 1] * [N, C, H, W] (channel attention)
            else:
                raise ResdslError("shape", f"residual {kind} needs matching shapes", span,
                                  label=f"body gives {S.shape_str(body.shape)}, skip gives {S.shape_str(skip.shape)}",
                                  help=_residual_help(body, skip))
        if kind == "concat":
            dim = m.arg if isinstance(m.arg, int) else 1
            return op("concat", [skip, body], [], {"dim": dim})
        if kind == "mul":
            return op("mul", [body, skip])
        return op(kind, [body, skip])

    def parallel(self, e: ast.Parallel, ctx: Ctx, x: Value):
        opts = self.region_args(e.args, ctx, ("merge",), "parallel", e.span)
        merge = self.merge_spec(opts.get("merge", "add"), e.span)
        scope = ctx.scope.child("parallel", "parallel", ctx.prefix, e.span, merge=merge.kind)
        outs = []
        for i, br in enumerate(e.branches):
            bscope = scope.child("branch", f"branch{i}", ctx.prefix, br.span)
            bctx = ctx.sub(scope=bscope, env=dict(ctx.env), current=x, in_value=x)
            v = self.chain(br, bctx, start=True)
            if not isinstance(v, Value):
                raise ResdslError("type", f"parallel branch {i} gives no tensor", br.span)
            outs.append(v)
        if len(outs) == 1:
            return outs[0]
        mctx = ctx.sub(scope=scope)
        if merge.kind == "concat":
            dim = merge.arg if isinstance(merge.arg, int) else 1
            return self.apply_op(O.OPS["concat"], outs, [], {"dim": dim}, None, mctx, e.span)
        if merge.kind in ("add", "mean", "mul"):
            for i, v in enumerate(outs[1:], 1):
                if not S.same_sizes(v.shape, outs[0].shape):
                    raise ResdslError("shape", f"parallel {merge.kind} needs matching shapes", e.span,
                                      label=f"branch 0 gives {S.shape_str(outs[0].shape)}, branch {i} gives "
                                            f"{S.shape_str(v.shape)}",
                                      help="make the branches end with the same channels, or use merge=concat")
            if merge.kind == "mul" and len(outs) != 2:
                raise ResdslError("type", "merge=mul takes exactly two branches", e.span)
            return self.apply_op(O.OPS[merge.kind], outs, [], {}, None, mctx, e.span)
        raise ResdslError("type", f"parallel merge `{merge.kind}` is not supported", e.span,
                          help="parallel merges: add, concat, mean, mul")

    def count(self, expr, ctx, what):
        n = self.evaluate(expr, ctx)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ResdslError("type", f"`{what}` count must be a non-negative int, got {_show(n)}", expr.span)
        if n > MAX_REPEAT:
            raise ResdslError("limit", f"`{what}` count {n} is over the limit of {MAX_REPEAT}", expr.span,
                              help="split the network or lower the count")
        return n

    def repeat(self, e: ast.Repeat, ctx: Ctx, x: Value):
        n = self.count(e.count, ctx, "repeat")
        name = self.name_of(e.as_name, ctx)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("repeat", name or "repeat", prefix, e.span, count=n)
        single = _single_block_call(e.body)
        cur = x
        for i in range(n):
            self.budget.step(e.span)
            ipath = join(prefix, str(i)) if name else prefix
            iscope = scope.child("iteration", str(i), ipath, e.span, index=i)
            env = dict(ctx.env)
            if e.index:
                env[e.index] = i
            ictx = ctx.sub(scope=iscope, prefix=ipath, env=env, current=cur, in_value=cur,
                           counters={} if name else None)
            if single is not None and name:
                out = self.single_call(e.body, ictx, cur, ipath)
                if out is not None:
                    cur = out
                    continue
            cur = self.body(e.body, ictx)
            if not isinstance(cur, Value):
                raise ResdslError("shape", "the repeat body computes nothing", e.span)
        scope.info["out"] = cur
        return cur

    def single_call(self, body: ast.Body, ctx: Ctx, x: Value, path: str, ops: bool = False):
        """A body that is one unnamed block call gives the block the enclosing name (`layer1.0`,
        a shortcut's `downsample`), as torchvision names a lone module; None for other bodies.
        With `ops`, one unnamed op with weights does too (`shortcut { conv1x1(c) } as proj`:
        `proj.weight`)."""
        link = _single_block_call(body)
        if link is None:
            return None
        callee = self.evaluate(link.expr.func if isinstance(link.expr, ast.Call) else link.expr, ctx)
        if not (isinstance(callee, (BlockRef, Partial)) and _is_block(callee)) and \
                not (ops and isinstance(callee, (OpRef, Partial)) and _is_op(callee)):
            return None
        tensors, args, kwargs = self.eval_args(link.expr.args, ctx, callee) if isinstance(
            link.expr, ast.Call) else ([], [], {})
        return self.apply(callee, [x] + tensors, args, kwargs, None, ctx, link.expr.span, path=path)

    def loop(self, e: ast.Loop, ctx: Ctx, x: Value):
        if not e.shared:
            raise ResdslError("syntax", "`loop` shares one set of weights and needs the word `shared`", e.span,
                              help="write `loop n shared { ... }`, or `repeat n { ... }` for separate weights")
        n = self.count(e.count, ctx, "loop")
        name = self.name_of(e.as_name, ctx)
        prefix = join(ctx.prefix, name) if name else ctx.prefix
        scope = ctx.scope.child("loop", name or "loop", prefix, e.span, count=n, shared=True)
        counters = {}
        cur = x
        for i in range(n):
            self.budget.step(e.span)
            iscope = scope.child("iteration", str(i), prefix, e.span, index=i)
            env = dict(ctx.env)
            if e.index:
                env[e.index] = i
            snapshot = dict(ctx.counters) if not name else {}
            ictx = ctx.sub(scope=iscope, prefix=prefix, env=env, current=cur, in_value=cur,
                           counters=dict(snapshot) if not name else dict(counters))
            if i > 0:
                self.sharing.append(prefix)
            try:
                cur = self.body(e.body, ictx)
            finally:
                if i > 0:
                    self.sharing.pop()
            if not isinstance(cur, Value):
                raise ResdslError("shape", "the loop body computes nothing", e.span)
            if i == n - 1 and not name:
                ctx.counters.update(ictx.counters)
        scope.info["out"] = cur
        return cur


# ---------------------------------------------------------------- helpers
MAX_FRAMES = 12  # call-stack notes shown in full; deeper stacks keep both ends


def add_frame(err: ResdslError, text: str):
    """One call-stack note (rustc style, under the message): `in features.4.1 (MBConv, called at net.res:24:9)`."""
    frames = getattr(err, "frames", None)
    if frames is None:
        frames = err.frames = []
    frames.append(len(err.notes))
    err.notes.append((text, None))


def compress_frames(err: ResdslError):
    """A deep recursion would print 64 frames: keep the innermost and outermost few."""
    idx = getattr(err, "frames", [])
    if len(idx) <= MAX_FRAMES:
        return
    keep = set(idx[:MAX_FRAMES // 2] + idx[-MAX_FRAMES // 2:])
    drop = [i for i in idx if i not in keep]
    notes = []
    for i, note in enumerate(err.notes):
        if i == drop[0]:
            notes.append((f"... {len(drop)} more calls ...", None))
        if i not in drop:
            notes.append(note)
    err.notes = notes
    err.frames = []


class _Nest:
    """`with el.nested(span):` around a region or block body (see Elaborator.nested)."""
    __slots__ = ("el", "span")

    def __init__(self, el, span):
        self.el, self.span = el, span

    def __enter__(self):
        self.el.nest += 1
        if self.el.nest > B.MAX_NEST:
            raise ResdslError("limit", f"regions and blocks nest deeper than {B.MAX_NEST}", self.span,
                              help="flatten the description, or make a recursion stop earlier")

    def __exit__(self, *exc):
        self.el.nest -= 1


class InitValue:
    def __init__(self, spec):
        self.spec = spec


def op_signature(od: O.OpDef) -> str:
    parts = []
    for a in od.attrs:
        parts.append(a.name if a.default is O.REQUIRED else f"{a.name}={_show(a.default)}")
    return f"{od.name}({', '.join(parts)})"


def _attr_type(t):
    return {"int": "an int", "num": "a number", "bool": "true or false", "str": "a string",
            "ints": "an int or a list of ints", "str_or_int": "an int, a list of ints or a string",
            "shape": "a list of sizes"}.get(t, t)


def _type_str(t):
    if t is None:
        return "any"
    return t.name + (f"[{', '.join(_type_str(a) for a in t.args)}]" if t.args else "") + ("?" if t.optional else "")


def _show(v, room: int = 80):
    """A value as `.res` text for messages, cut short (a huge list or number stays one line)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        text = v if len(v) <= room else v[:room] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    if isinstance(v, CALLABLE):
        return f"`{v.name}`"
    if isinstance(v, Value):
        return f"{S.shape_str(v.shape)}"
    if isinstance(v, (list, tuple)):
        parts = [_show(x, max(8, room // 4)) for x in v[:8]]
        return "[" + ", ".join(parts) + (", ..." if len(v) > 8 else "") + "]"
    if isinstance(v, int) and v.bit_length() > 200:
        return f"<an integer of {v.bit_length()} bits>"
    return str(v)


def _sig_str(sig):
    return ", ".join(f"{k or 'weight'}{list(s)}" for k, s in sig[1])


def _expr_str(e) -> str:
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Call):
        return _expr_str(e.func)
    if isinstance(e, ast.Attr):
        return f"{_expr_str(e.value)}.{e.name}"
    if isinstance(e, ast.Const):
        return _show(e.value)
    return type(e).__name__.lower()


def _residual_help(body, skip):
    if len(body.shape) >= 2 and len(skip.shape) == len(body.shape):
        c = body.shape[1].size
        stride = ""
        if len(body.shape) > 2:
            a, b = skip.shape[2].size, body.shape[2].size
            if a != b and isinstance(Size.lift(a) - b, (Size, int)):
                try:
                    r = Size.lift(a).truediv(1)
                    ratio = None
                    for s in (2, 4, 8):
                        if S.truediv(r, s) == b:
                            ratio = s
                    if ratio:
                        stride = f", stride={ratio}"
                except Exception:  # noqa: BLE001 - the help is best effort
                    stride = ""
        return f"add `shortcut {{ conv({c}, 1{stride}, bias=false) -> bn }}`, or use merge=concat"
    return "make the body end with the input's shape, or add a `shortcut { ... }`"


def _gates(body, skip) -> bool:
    """True when `body` broadcasts onto `skip` without changing its shape (residual merge=mul)."""
    try:
        out = O._broadcast(body.shape, skip.shape)
    except O.OpError:
        return False
    return S.same_sizes(out, skip.shape)


def _single_block_call(body: ast.Body):
    if len(body.stmts) != 1 or not isinstance(body.stmts[0], ast.ChainStmt):
        return None
    links = body.stmts[0].chain.links
    if len(links) != 1 or links[0].as_name is not None:
        return None
    if isinstance(links[0].expr, (ast.Call, ast.Name)):
        return links[0]
    return None


def takes_no_input(c) -> bool:
    """Ops such as `param` make a tensor from nothing."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    return isinstance(c, OpRef) and c.opdef.inputs == 0


def _min_inputs(c) -> int:
    """How many tensors an op needs at least (0 for blocks: they say so themselves)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    if isinstance(c, OpRef):
        return c.opdef.inputs if isinstance(c.opdef.inputs, int) else c.opdef.inputs[0]
    return 0


def _declared_inputs(c) -> int:
    """How many `input` names a block declares (0: it takes the one current tensor)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    if not isinstance(c, BlockRef):
        return 0
    return sum(len(st.decls) for st in c.defn.body.stmts if isinstance(st, ast.Input))


def _variadic(c) -> bool:
    """An op that takes any number of tensors (concat, add, stack, ...)."""
    while isinstance(c, (Partial, Instance)):
        c = c.callee if isinstance(c, Partial) else c.partial
    return isinstance(c, OpRef) and isinstance(c.opdef.inputs, tuple) and c.opdef.inputs[1] is None


def _name(c) -> str:
    return getattr(c, "name", "?")


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


def _is_op(c):
    while isinstance(c, Partial):
        c = c.callee
    return isinstance(c, OpRef)


def _is_block(c):
    while isinstance(c, Partial):
        c = c.callee
    return isinstance(c, BlockRef)


def elaborate(program: Program, network: str | None = None, overrides: dict | None = None,
              shape_overrides: dict | None = None) -> Graph:
    return Elaborator(program, shape_overrides).network(network, overrides)


def parse_value(text: str, program: Program, what: str):
    """A `--set` value or YAML scalar written as a `.res` expression (never Python eval)."""
    from ..diagnostics import SourceFile
    span = Span(SourceFile(what, text), 1, 1, 1, len(text) + 1)
    try:
        e = parse_expr(text, span)
    except ResdslError:
        if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9.\-]*", text):
            return text  # a bare word such as a mode name: keep it as a string
        raise ResdslError("syntax", f"{what}: `{text}` is not a .res expression",
                          help="values are .res expressions: 10, 0.1, true, [3, 4, 6, 3], \"name\"") from None
    el = Elaborator(program)
    ctx = Ctx(None, "", {}, module=program.root)
    try:
        return el.evaluate(e, ctx)
    except ResdslError:
        if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", text):
            return text
        raise
