"""AST -> IR: scopes, parameters, compile-time expressions, repeat/loop/if, shapes.

Everything here runs at compile time; tensors are the only run-time values and
appear as IR :class:`Value` objects. Every op application is shape-checked when
it is created, so a mismatch is reported at its source position.

The Elaborator is split by concern: this module holds the entry point, statements, chains and
callee dispatch; its mixins hold expressions (exprs.py), block calls and parameters (blocks.py),
op application (ops_apply.py) and regions (regions.py); context.py, callees.py and describe.py
hold what they share.
"""
from __future__ import annotations

import re

from ..diagnostics import ResdslError, Span, did_you_mean
from ..frontend import ast
from ..frontend.read import parse_expr
from ..ir import ops as O
from ..ir.graph import Graph, Node, Scope, Value
from ..ir.shapes import Axis, Size
from . import budget as B
from . import tensor_math
from . import tying
from .blocks import BlockMixin
from .callees import declared_inputs, is_block, min_inputs, callee_name, variadic, takes_no_input
from .context import (  # noqa: F401 - re-exported: older code imports these from here
    MAX_FRAMES,
    MAX_NODES,
    MAX_RECURSION,
    MAX_REPEAT,
    Ctx,
    InitValue,
    add_frame,
    compress_frames,
    join,
    snake,
)
from .describe import expr_str, show_value, op_signature  # noqa: F401 - op_signature re-exported
from .exprs import ExprMixin
from .loader import Program
from .names import segment_problem
from . import traps  # errors for programs that would silently not do what they say
from .callees import is_op
from .ops_apply import OpApplyMixin
from .regions import RegionMixin
from .values import CALLABLE, BlockRef, Builtin, Fn, Instance, OpRef, Partial, type_name


def training_only(ref, ctx, outputs) -> tuple:
    """The indices of the outputs marked `training` (returned in training mode only)."""
    spans = getattr(ctx, "train_marks", {})
    marks = tuple(sorted(spans))
    if marks and len(marks) == len(outputs):
        raise ResdslError("type", f"network `{ref.name}` has only `training` outputs: in eval mode it would "
                                  "return nothing", spans[marks[0]],
                          help="leave the main output unmarked: `output logits, training aux = ...`")
    return marks


class Elaborator(ExprMixin, BlockMixin, OpApplyMixin, RegionMixin):
    # Graph.verify checks the IR's own invariants (SSA, order, known ops, one owner per state): a
    # failure is a bug of resdsl, never of the text (check and every command run it)
    verify_graphs = True

    def __init__(self, program: Program, shape_overrides: dict | None = None, input_channels: int | None = None,
                 input_shape=None):
        self.program = program
        self.nodes: list[Node] = []
        self.value_names: dict[str, int] = {}
        self.states: dict[str, tuple] = {}  # path -> (op signature, span)
        self.param_specs: dict[str, dict] = {}  # path -> {local: ParamSpec}, for `tie=`
        self.pending_ties = []  # (node, (candidate owners, text, span)): ties to ops defined later
        self.tied_to: dict[str, str] = {}  # tied parameter's full name -> its owner's
        self.node_at: dict[str, Node] = {}  # path -> the first node with weights there (for `tie=`)
        self.sharing: list[str] = []  # path prefixes whose state may be reused
        self.depth = 0
        self.shape_overrides = dict(shape_overrides or {})
        self.input_shape = None if input_shape is None else list(input_shape)  # the network's first input
        self.input_channels = input_channels  # in_chans: the channel axis of the network's first input
        self.budget = B.Budget(getattr(program, "source_bytes", 0))
        self.used_names: set[str] = set()  # every value name given out (fresh() never repeats one)
        self.nest = 0  # regions and blocks open now (bounded by budget.MAX_NEST)
        self.last_span = None  # the statement being elaborated, for errors that have no better place
        self.annotations = []  # (kind, [(path, span)], span) of the network's `@...` lines

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

    def target(self, name: str | None):
        """(name, BlockRef, args, kwargs, span) of the network `name` (None: the file's only one);
        an alias (`network resnet18 = ResNet(...)`) gives the network it calls and its arguments."""
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
        return name, ref, args, kwargs, span

    def _network(self, name: str | None, overrides: dict | None = None) -> Graph:
        name, ref, args, kwargs, span = self.target(name)
        overrides = dict(overrides or {})
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
            tying.finish(self)  # ties to ops defined after them
        except ResdslError as err:
            compress_frames(err)
            raise
        inputs = ctx.inputs
        if not inputs:
            raise ResdslError("shape", f"network `{ref.name}` declares no input", ref.defn.span,
                              help="add `input x: [N, 3, H, W]` as its first statement")
        traps.check_end(ctx, f"network `{ref.name}`")
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
        graph.train_only = training_only(ref, ctx, outputs)
        if len(graph.outputs) == 1 and outputs[0][0] is None:
            graph.output_names = ["out"]
        root.info["params"] = {k: v for k, v in bound.items() if not isinstance(v, CALLABLE)}
        if self.verify_graphs:
            graph.verify()
        traps.check_depends(graph, ref.defn.span, ref.name)
        if self.annotations:
            from ..ir.interface import resolve
            root.info["interface"] = resolve(graph, self.annotations)
        return graph

    def training_output(self, ctx: Ctx, item):
        if ctx.scope is None or ctx.scope.kind != "network":
            raise ResdslError("type", f"`training {item.name} = ...` is an output of a network, not of a block",
                              item.span, help="return it from the block as a plain output and mark it "
                                              "`training` in the network's `output` line")
        ctx.train_marks = {**getattr(ctx, "train_marks", {}), len(ctx.outputs): item.span}

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
            ctx.list_bind = None
        elif isinstance(st, ast.Assign):
            if _names_current(st, ctx):  # `t = identity`: names the current tensor, makes no op
                v = self.need(ctx.current, st.span, "identity")
            else:
                v = self.chain(st.chain, ctx, start=True)
            traps.note_bind(ctx, st, v)
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
            traps.check_let(st.name, v, st.span)
            if isinstance(v, list) and v and all(isinstance(t, Value) for t in v):
                ctx.list_bind = st  # `let outs = outs + [t]` last: the result would be the tensor before
            if isinstance(v, Partial) and isinstance(v.callee, (BlockRef, OpRef)):
                v = Instance(v, join(ctx.prefix, st.name))
            ctx.env[st.name] = v
        elif isinstance(st, ast.Input):
            self.input_stmt(st, ctx)
        elif isinstance(st, ast.Output):
            ctx.list_bind = None
            traps.check_output_place(ctx, st.span)
            for item in st.items:
                v = self.chain(item.chain, ctx, start=True)
                if isinstance(v, tuple) and v and all(isinstance(t, Value) for t in v) and item.name is None:
                    for t in v:  # `output parts`: a list of tensors gives each
                        ctx.outputs.append((None, t))
                        ctx.out_binds.append(None)
                    continue
                if not isinstance(v, Value):
                    raise ResdslError("type", f"`output` needs a tensor, got {type_name(v)}", item.span)
                if item.training:
                    self.training_output(ctx, item)
                ctx.outputs.append((item.name, v))
                links = item.chain.links
                bare = links[0].expr.id if len(links) == 1 and isinstance(links[0].expr, ast.Name) \
                    and links[0].as_name is None else None
                ctx.out_binds.append(item.name or bare)
                if item.name:
                    ctx.env[item.name] = v
        elif isinstance(st, ast.For):
            it = self.evaluate(st.iterable, ctx)
            if isinstance(it, tuple) and it and all(isinstance(t, Value) for t in it):
                it = list(it)  # a list of tensors (`parts = split(...)`)
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
        elif isinstance(st, ast.Annotation):
            self.annotation(st, ctx)
        else:  # pragma: no cover - the grammar has no other statements
            raise ResdslError("syntax", f"unsupported statement {type(st).__name__}", st.span)

    def annotation(self, st: ast.Annotation, ctx: Ctx):
        """`@classifier fc`, `@features layer1, ...`: recorded, checked once the graph is complete."""
        from ..ir.interface import KINDS
        owner = ctx.scope  # the network or block whose body this is (regions and groups belong to it)
        while owner is not None and owner.kind not in ("network", "block"):
            owner = owner.parent
        if owner is None or owner.kind != "network":
            if owner is not None and owner.info.get("network"):
                return  # a network called as a block: what it says of itself is about it as a whole model
            raise ResdslError("syntax", f"`@{st.name}` describes a network; it cannot stand in a block", st.span,
                              help="write it in the network's body; its paths start at the network "
                                   "(`@features layer1`)")
        if st.name not in KINDS:
            hint = did_you_mean(st.name, KINDS)
            raise ResdslError("name", f"unknown annotation `@{st.name}`", st.span,
                              help=(hint + " " if hint else "") + "annotations: " +
                                   "; ".join(f"@{k}: {v}" for k, v in KINDS.items()))
        self.annotations.append((st.name, [(self.name_of(t, ctx), t.span) for t in st.targets], st.span))

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
        if ctx.scope.kind == "block":  # a block's top-level `input` lines are bound by the call (blocks.py)
            raise ResdslError("syntax", "a block's `input` goes at the top level of its body, not inside "
                                        "`if`, `else` or `for`: the call binds the block's inputs before its body runs",
                              st.span, help="move the `input` line to the top of the block; to choose between "
                                            "inputs, declare them all and pick one in the `if`")
        for d in st.decls:
            if d.shape is None:
                if ctx.scope.kind == "network":
                    raise ResdslError("shape", f"network input `{d.name}` needs a shape", d.span,
                                      help=f"e.g. `input {d.name}: [N, 3, H, W]`")
                ctx.inputs.append(d)
                continue
            given = None
            if self.input_shape is not None and ctx.scope.kind == "network" and not ctx.inputs:
                given = self._given_shape(d)
            axes = []
            chans = self.input_channels if ctx.scope.kind == "network" and not ctx.inputs else None
            if chans is not None and len(d.shape) < 3:
                raise ResdslError("usage", f"in_chans sets the channels of an image input [N, C, ...]; input "
                                           f"`{d.name}` has {len(d.shape)} axes", d.span)
            for i, a in enumerate(d.shape):
                if chans is not None and i == 1:
                    axes.append(Axis(chans, a.name))
                elif a.size is None:
                    size = self.shape_overrides.get(a.name, Size.sym(a.name))
                    axes.append(Axis(size, a.name))
                else:
                    v = self.evaluate(a.size, ctx)
                    if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v > O.MAX_DIM:
                        raise ResdslError("shape", f"axis size must be a positive int below 2**31, got {show_value(v)}",
                                          a.span)
                    if given is not None and given[i] != v:
                        raise ResdslError("usage", f"--input-shape gives {given[i]} for an axis fixed at {v}")
                    axes.append(Axis(v, a.name))
            val = Value(self.fresh(d.name), tuple(axes))
            ctx.inputs.append(val)
            ctx.env[d.name] = val
            ctx.current = val

    def _given_shape(self, d) -> list:
        """--input-shape (input_shape= in the API) for the network's first input `d`: its named
        axes take the sizes given, for every input that names them; fixed axes are checked."""
        dims = self.input_shape
        if len(dims) != len(d.shape):
            raise ResdslError("usage", f"--input-shape has {len(dims)} axes, the input {d.name} has {len(d.shape)}")
        for a, n in zip(d.shape, dims):
            if a.size is None and a.name:
                self.shape_overrides[a.name] = n
        return dims

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
            if tensor_math.call_name(callee) is not None:  # where, min, pow, arange (tensor_math.py)
                if not piped:  # `arange(x.L) -> ...`, `where(m, a, b) -> ...`: the expression
                    v = self.evaluate(e, ctx)
                    if not isinstance(v, Partial):
                        return v
                    return self.apply(v.callee, [self.need(cur, e.span, expr_str(e.func))], list(v.args),
                                      dict(v.kwargs), link.as_name, ctx, e.span)
                callee = tensor_math.chain_callee(callee)  # `x -> min(0.5)` is minimum
            if isinstance(callee, Builtin) and callee.name in O.OPS:
                callee = OpRef(O.OPS[callee.name])  # in a chain, `sum(dim=1)` is the tensor op
            if isinstance(callee, (Builtin, Fn)):
                return self.evaluate(e, ctx)
            if not isinstance(callee, CALLABLE):
                raise ResdslError("type", f"`{expr_str(e.func)}` is a {type_name(callee)}, not an op or block",
                                  e.func.span)
            tensors, args, kwargs = self.eval_args(e.args, ctx, callee)
            # the current tensor goes first when piped, when no tensor is given, or when an op
            # needs one more tensor than given (`add(pos_embedding)` at a statement's start)
            if (piped or not tensors or min_inputs(callee) > len(tensors)) and not takes_no_input(callee):
                tensors = [self.need(cur, e.span, expr_str(e.func))] + tensors
            return self.apply(callee, tensors, args, kwargs, link.as_name, ctx, e.span)
        v = self.evaluate(e, ctx)
        if isinstance(v, Builtin) and v.name in O.OPS:
            v = OpRef(O.OPS[v.name])  # in a chain, `-> abs` / `-> sqrt` / `-> log` is the tensor op
        if isinstance(v, list) and v and all(isinstance(x, Value) for x in v):
            v = tuple(v)  # `ys = [(o -> relu) for o in outs]`: a list of tensors
        if isinstance(v, (Value, tuple)) and not isinstance(v, CALLABLE):
            if piped:
                raise ResdslError("type", f"cannot pipe a tensor into the tensor `{expr_str(e)}`", e.span,
                                  help="a chain is `source -> op -> op`; only its first element may be a tensor")
            if link.as_name is not None:
                raise ResdslError("type", "`as` names an op or block, not a tensor", link.as_name.span)
            return v
        if isinstance(v, CALLABLE):
            ins = [] if takes_no_input(v) else [self.need(cur, e.span, expr_str(e))]
            return self.apply(v, ins, [], {}, link.as_name, ctx, e.span)
        raise ResdslError("type", f"`{expr_str(e)}` is a {type_name(v)} {show_value(v)}; a chain needs ops, blocks "
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
        keep_lists = callee is not None and is_block(callee) and declared_inputs(callee) == 0
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
                elif isinstance(v, list) and not v and variadic(callee):
                    empties += 1
                elif pos is not None:
                    if callee is not None and is_op(callee):
                        traps.check_tensor_arg(callee_name(callee), v, a.span)
                    pos.append(v)
            else:
                if a.name in kw:
                    raise ResdslError("type", f"argument `{a.name}` given twice", a.span)
                kw[a.name] = v
                spans[a.name] = a.span
        if empties and not tensors:  # `concat(kids)` with nothing at all: say so, not "dim"
            raise ResdslError("type", f"`{callee_name(callee)}` gets an empty list of tensors", args[0].span,
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

    def name_of(self, as_name, ctx, inline_ok: bool = False) -> str | None:
        """The name `as` gives (None without `as`): a template filled in, `as +` the next index of
        the enclosing numbering (ctx.counters, per path prefix: only modules present count), and
        `as .` "" where `inline_ok` (a block call or a group: no name level), else an error."""
        if as_name is None:
            return None
        if as_name.mode == "next":
            key = (ctx.prefix, "+")
            k = ctx.counters.get(key, 0)
            ctx.counters[key] = k + 1
            return str(k)
        if as_name.mode == "inline":
            if not inline_ok:
                raise ResdslError("name", "`as .` calls a block (or a `{ }` group) with no name level of its own; "
                                          "here it has nothing to apply to", as_name.span,
                                  help="give it a name (`as conv1`), or `as +` for the next index")
            return ""
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
                                  help="to call a block with no name level of its own, write `as .` (unquoted)"
                                  if name in (".", "") else
                                  "a quoted name may hold any characters PyTorch accepts in a module name "
                                  "(`as \"block1-0\"`); `.` separates its segments (`as \"convs.{i}\"`)")
        return name

    def auto_name(self, ctx, base) -> str:
        key = (ctx.prefix, base)
        k = ctx.counters.get(key, 0)
        while join(ctx.prefix, f"{base}_{k}") in self.states and not self.sharing:
            k += 1  # `conv(4, 1) as conv_1 -> conv(4, 1) -> conv(4, 1)`: skip the name the author took
        ctx.counters[key] = k + 1
        return f"{base}_{k}"

    def check_nesting(self, path: str, span):
        """A new layer's name that nests with another's (`conv1` and `conv1.c`): an error (traps.py)."""
        traps.check_nesting(self, path, span)

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


def elaborate(program: Program, network: str | None = None, overrides: dict | None = None,
              shape_overrides: dict | None = None, input_channels: int | None = None, input_shape=None) -> Graph:
    """The IR graph of `network`; `shape_overrides` maps axis names to sizes, `input_shape`
    gives the first input's whole shape (--input-shape), `input_channels` its channels (in_chans)."""
    return Elaborator(program, shape_overrides, input_channels, input_shape).network(network, overrides)


def network_params(program: Program, network: str | None = None) -> list[str]:
    """The parameter names of network `network` (of the network an alias calls)."""
    return [p.name for p in Elaborator(program).target(network)[1].defn.params]


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


def _names_current(st: ast.Assign, ctx: Ctx) -> bool:
    """`t = identity`, the op `identity` alone on the right: the way to name the current tensor."""
    links = st.chain.links
    if len(st.targets) != 1 or len(links) != 1 or links[0].as_name is not None:
        return False
    e = links[0].expr
    if not isinstance(e, ast.Name) or e.id != "identity":
        return False
    v = ctx.lookup("identity")
    return isinstance(v, OpRef) and v.name == "identity" or v is None and not ctx.has("identity")
