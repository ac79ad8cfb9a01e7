"""The plan of :mod:`tree` -> a tree of modules, each a small ``torch.fx.GraphModule``.

Leaf modules and parameters come from :func:`ops.build_modules`, unchanged (same
creation order, so the same initial weights, and the same state_dict keys and order).
Each planned scope's plain container is then replaced, bottom-up, by a module over the
same children whose forward computes the scope: a :class:`ResModule` (an fx GraphModule
that can also be indexed like ``nn.Sequential``), or a real ``nn.Sequential`` where the
scope is a chain of its numbered children (a repeat of blocks, a shortcut ``conv -> bn``).
"""
from __future__ import annotations

import operator
from collections import OrderedDict

import torch
import torch.fx
import torch.fx.experimental._config

from . import persist, runtime
from ...ir.graph import Graph
from . import ops as TF
from . import training
from .tree import Site, all_sites, check_names, plan, plan_checkpoint


class ResModule(torch.fx.GraphModule):
    """A resdsl block: an fx GraphModule over its layers, its forward computing the block.

    Numbered children are reachable by index (``model.layer1[0]``), as in nn.Sequential.
    ``code`` shows this module's forward followed by the forward of each distinct block
    below it, so ``print(model.code)`` reads as the network's outline, then its blocks."""

    def _recompile_submodules(self):
        return []  # children were compiled when built; torch would recompile the whole subtree per level

    def recompile(self):
        """torch's recompile, with the generated forward shared between modules of equal graphs
        (the 600 blocks of a 1202-layer ResNet are compiled once, not 600 times)."""
        key = _graph_key(self._graph)
        hit = _FORWARDS.get(key) if key is not None else None
        if hit is None:
            pc = super().recompile()
            if key is not None:
                _FORWARDS[key] = (pc, type(self).forward, type(self).__call__, self._code, self._lineno_map,
                                  self._prologue_start)
            persist.own_call(type(self))
            return pc
        pc, fwd, call, self._code, self._lineno_map, self._prologue_start = hit
        cls = type(self)
        cls.forward = fwd
        cls.__call__ = call  # torch's own call_wrapped (torch.compile knows it), generic in the class
        persist.own_call(cls)
        return pc

    def __deepcopy__(self, memo):
        return persist.deepcopy_module(self, memo)

    def __reduce__(self):
        return persist.reduce_module(self)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            raise TypeError("a resdsl block is indexed by number, e.g. model.layer1[0]")
        names = [k for k in self._modules if k.isdigit()]
        if isinstance(idx, int) and -len(names) <= idx < len(names):
            return self._modules[names[idx]]
        raise IndexError(f"{type(self).__name__} has no child {idx!r}")

    @property
    def code(self) -> str:
        return _listing(self)


_FORWARDS = {}


class ModalModule(training.ModalMixin, ResModule):
    """The root module of a network with training-only outputs (training.py)."""


def arg_key(a, ref):
    """A hashable key of an fx call argument (nested tuples, lists and dicts); `ref(node)` keys a
    Node (its name, or its place in the graph), so two graphs compare by structure."""
    if isinstance(a, torch.fx.Node):
        return ("%", ref(a))
    if isinstance(a, (tuple, list)):
        return (type(a).__name__,) + tuple(arg_key(x, ref) for x in a)
    if isinstance(a, dict):
        return ("dict",) + tuple((k, arg_key(v, ref)) for k, v in a.items())
    return (type(a).__name__, repr(a))


def _graph_key(g: torch.fx.Graph):
    """Everything fx's code generation reads from a graph, hashable; None where unsure."""
    if type(g._codegen) is not torch.fx.graph.CodeGen or getattr(torch.fx.experimental._config,
                                                                 "enrich_profiler_metadata", False):
        return None
    out = []

    def arg(a):
        return arg_key(a, lambda n: n.name)
    for n in g.nodes:
        if n.type is not None or n.meta.get("stack_trace"):
            return None
        tgt = n.target if isinstance(n.target, str) else (id(n.target), getattr(n.target, "__name__", ""))
        out.append((n.op, n.name, tgt, arg(n.args), arg(n.kwargs)))
    return tuple(out)


def _listing(top) -> str:
    """The forward of `top`, then of each distinct module below it, each headed by where it is used."""
    out = [top._code.strip("\n")]
    seen = {}
    for name, m in top.named_modules(remove_duplicate=True):
        if m is top or not isinstance(m, ResModule):
            continue
        seen.setdefault(m._code, (type(m).__name__, []))[1].append(name)
    for src, (cls, names) in seen.items():
        where = ", ".join(names[:4]) + (f", ... ({len(names)} modules)" if len(names) > 4 else "")
        out += ["", f"# {cls}: {where}", src.strip("\n")]
    return "\n".join(out) + "\n"


def lower_tree(graph: Graph, root: torch.nn.Module, checkpoint=None) -> torch.fx.GraphModule:
    return lower_with_plan(graph, root, checkpoint)[0]


def lower_with_plan(graph: Graph, root: torch.nn.Module, checkpoint=None):
    """(root module, plan tree, first-use index of each path)."""
    check_names(graph)
    runtime.make_indexable(root)  # plain containers of numbered state (as "convs.{i}") index like lists
    tree = plan(graph)
    plan_checkpoint(tree, graph, checkpoint)
    first = _first_use(graph, tree)
    built = {}
    # bottom-up: children before parents, each module once (shared call sites reuse the primary's)
    order = [s for s in all_sites(tree) if s.primary is s]
    for site in reversed(order):
        if site is tree:
            continue
        cont = _container(root, site.path, first)
        built[site.path] = _module(graph, site, cont, first)
        _set(root, site.path, built[site.path])
    _reorder(root, "", first)
    gm = _make(graph, tree, root)
    gm.__class__.__name__ = TF.module_class_name(graph.name)
    return gm, tree, first


def _first_use(graph: Graph, tree: Site) -> dict:
    """path -> node index where its module is first needed: state owners' first use, a site's start."""
    first = {}
    for i, n in enumerate(graph.nodes):
        if n.path is not None and (n.params or n.has("stochastic") or n.has("module")):
            parts = n.path.split(".")
            for k in range(1, len(parts) + 1):
                first.setdefault(".".join(parts[:k]), i)
    for s in all_sites(tree):
        if s.path:
            first.setdefault(s.path, s.lo)
    return first


def _container(root, path, first):
    """The plain container at `path` (created for a block without state)."""
    m = root
    for part in path.split("."):
        if part not in m._modules:
            m.add_module(part, torch.nn.Module())
        m = m._modules[part]
    return m


def _set(root, path, mod):
    *parents, leaf = path.split(".")
    m = root
    for p in parents:
        m = m._modules[p]
    m._modules[leaf] = mod


def _reorder(m, path, first):
    """Children in first-use order; modules made for stateless blocks were appended at the end.
    Stateful children already are in that order (state is created in first-use order)."""
    keys = list(m._modules)
    pre = path + "." if path else ""
    order = sorted(keys, key=lambda k: (first.get(pre + k, 1 << 60), keys.index(k)))
    if order != keys:
        m._modules = OrderedDict((k, m._modules[k]) for k in order)


def _module(graph, site, cont, first):
    _reorder(cont, site.path, first)
    g = _site_graph(graph, site, cont)
    if _is_chain(g, cont):
        mod = torch.nn.Sequential()
        mod._modules = cont._modules
    else:
        mod = _as_resmodule(cont, g, _class(site.label))
    mod._resdsl_block = site.unit  # a computing unit (block, iteration, group, loop body), not a container
    return mod


def blocks(model: torch.nn.Module):
    """(name, module) of every block in a built network, outermost first: the units to wrap with
    FSDP2's fully_shard, torch.utils.checkpoint or hooks (containers such as a repeat are left out)."""
    return [(n, m) for n, m in model.named_modules() if getattr(m, "_resdsl_block", False)]


def _make(graph, tree, root):
    g = _site_graph(graph, tree, root)
    if graph.train_only:  # `output y, training aux = ...`: a forward that branches on self.training
        return training.make_modal(ModalModule, root, g, TF.module_class_name(graph.name), graph)
    return _as_resmodule(root, g, TF.module_class_name(graph.name))


def _as_resmodule(cont, g, cls_name):
    gm = ResModule(cont, g, class_name=cls_name)
    # keep every child (also those only used from elsewhere) in the original order
    gm._modules, gm._parameters, gm._buffers = cont._modules, cont._parameters, cont._buffers
    return gm


def _class(label: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in str(label).split("_") if p) or "Block"


def _is_chain(g: torch.fx.Graph, cont) -> bool:
    """A forward that applies children 0, 1, ..., k-1 in turn to one input: an nn.Sequential."""
    nodes = list(g.nodes)
    if len(nodes) < 3 or nodes[0].op != "placeholder" or nodes[-1].op != "output":
        return False
    names = list(cont._modules)
    if cont._parameters or cont._buffers or names != [str(i) for i in range(len(names))]:
        return False
    body = nodes[1:-1]
    if len(body) != len(names):
        return False
    prev = nodes[0]
    for i, n in enumerate(body):
        if n.op != "call_module" or n.target != str(i) or n.args != (prev,) or n.kwargs:
            return False
        prev = n
    return nodes[-1].args == (prev,)


def _rel(path: str, base: str) -> str:
    return path[len(base) + 1:] if base else path


def _site_graph(graph: Graph, site: Site, cont) -> torch.fx.Graph:
    """The forward of one module as an fx graph: its own ops, and a call per child module."""
    g = torch.fx.Graph()
    env = {}
    nodes = graph.nodes
    base = site.path
    strip = base.replace(".", "_") + "_" if base else ""
    for k, v in enumerate(site.inputs):
        env[v] = g.placeholder(_py_name(v.name) if not base else ("x" if k == 0 else f"x{k}"))
    renamed = set()
    seg_at = {}
    for seg in site.ckpt or ():
        seg_at[seg[0].lo] = seg
    child_at = {c.lo: c for c in site.children}
    i = site.lo if base else 0
    end = site.hi if base else len(nodes)
    while i < end:
        seg = seg_at.get(i)
        c = child_at.get(i)
        if seg is not None:
            last = seg[-1]
            if len(seg) == 1:
                args = (g.get_attr(_rel(c.path, base)),) + tuple(env[v] for v in c.inputs)
                out = g.call_function(runtime.checkpoint, args)
            else:
                mods = tuple(g.get_attr(_rel(s.path, base)) for s in seg)
                out = g.call_function(runtime.checkpoint_chain, (env[c.inputs[0]],) + mods)
            out._rename("ckpt")
            _bind(g, env, last.outputs, out)
            i = last.hi
            continue
        if c is not None:
            out = g.call_module(_rel(c.path, base), tuple(env[v] for v in c.inputs))
            _bind(g, env, c.outputs, out)
            i = c.hi
            continue
        n = nodes[i]
        mark = g._root.prev
        out = TF.emit(g, n, [env[v] for v in n.inputs])
        if base:  # targets relative to this module
            node = mark.next
            while node is not g._root:
                if node.op in ("call_module", "get_attr") and node.target.startswith(base + "."):
                    node.target = node.target[len(base) + 1:]
                node = node.next
        if isinstance(out, (list, tuple)):
            for v, o in zip(n.outputs, out):
                env[v] = o
        else:
            env[n.outputs[0]] = out
        for v in n.outputs:
            node = env[v]
            if node.op == "placeholder" or not isinstance(node, torch.fx.Node):
                continue
            if not base:
                want = v.name
            elif v.name.startswith(strip):
                want = v.name[len(strip):]
            else:
                continue
            want = _py_name(want)
            if node not in renamed and node.name != want:
                node._rename(want)
                renamed.add(node)
        i += 1
    for node in g.nodes:
        if node.name == "self":  # fx does not reserve the name of the module argument
            node._rename("self_")
    outs = [env[v] for v in site.outputs]
    g.output(outs[0] if len(outs) == 1 else tuple(outs))
    shapes = {node: v.shape for v, node in env.items()}
    TF.in_place(g, cont, shapes)
    return g


def _py_name(name: str) -> str:
    """A forward argument or local named by the .res file, made a Python name: fx writes it
    into source code, where `input lambda: [...]` gave `def forward(self, lambda)`."""
    import keyword
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in ("self", "torch"):
        return name + "_"
    return name


def _bind(g, env, outputs, out):
    if len(outputs) == 1:
        env[outputs[0]] = out
    else:
        for k, v in enumerate(outputs):
            env[v] = g.call_function(operator.getitem, (out, k))
