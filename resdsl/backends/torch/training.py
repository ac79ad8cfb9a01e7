"""Networks with outputs marked `training` (``output logits, training aux = ...``): the root
module's forward branches on ``self.training``, as torchvision's GoogLeNet and Inception-v3 do.

The root module is one fx GraphModule whose ``graph`` is the training form (every output, in
the order of the ``.res`` file); a second fx graph, the eval form, is that graph with the
training outputs dropped and every node only they need removed. Both run over the same child
modules, so there is one state_dict, one set of hooks, one ``named_modules()``. The forward is

    if self.training:
        return Outputs(*train_forward(self, x))    # a namedtuple with the .res output names
    return eval_forward(self, x)                   # the main output(s) only

which torch.compile follows (it guards on ``self.training``).
"""
from __future__ import annotations

import collections
import keyword

import torch
import torch.fx
from torch.fx.graph_module import _forward_from_src

_TUPLES = {}


def outputs_class(name: str, fields: list) -> type:
    """The namedtuple of a network's training-mode outputs (one class per name and fields).
    Its instances pickle (by name and fields, rebuilt by :func:`outputs`), as torchvision's
    module-level GoogLeNetOutputs do; the class is made at run time, so pickle cannot import it."""
    key = (name, tuple(fields))
    if key not in _TUPLES:
        ok = all(f.isidentifier() and not keyword.iskeyword(f) and not f.startswith("_") for f in fields) \
            and len(set(fields)) == len(fields)
        base = collections.namedtuple(name, fields, rename=not ok)
        _TUPLES[key] = type(name, (base,), {"__slots__": (), "__module__": __name__, "__qualname__": name,
                                            "_rd_key": key, "__reduce__": _reduce_outputs})
    return _TUPLES[key]


def outputs(name: str, fields: list, values: tuple):
    """An outputs namedtuple (unpickling)."""
    return outputs_class(name, fields)(*values)


def _reduce_outputs(self):
    name, fields = self._rd_key
    return outputs, (name, list(fields), tuple(self))


# torchvision's one outputs tuple not named after its model class (torchvision.models.inception)
_TORCHVISION_NAMES = {"Inception3": "InceptionOutputs"}


def outputs_name(graph) -> str:
    """The outputs namedtuple's class name: the defining network's name and `Outputs`, as
    torchvision names them (`network googlenet = GoogLeNet()`: GoogLeNetOutputs; Inception3's
    is torchvision's InceptionOutputs), so code that checks the name works on both."""
    name = str(graph.root.info.get("block") or graph.name)
    if name in _TORCHVISION_NAMES:
        return _TORCHVISION_NAMES[name]
    return "".join(p[:1].upper() + p[1:] for p in name.split("_")) + "Outputs"


def eval_graph(g: torch.fx.Graph, keep: list) -> torch.fx.Graph:
    """A copy of `g` returning only the outputs at the indices `keep` (one: the tensor itself),
    without the nodes no kept output needs."""
    new = torch.fx.Graph()
    val_map = {}
    out = new.graph_copy(g, val_map)
    outs = [out[i] for i in keep]
    new.output(outs[0] if len(outs) == 1 else tuple(outs))
    for node in reversed(list(new.nodes)):
        if node.op not in ("placeholder", "output") and not node.users:
            new.erase_node(node)
    return new


class ModalMixin:
    """What the root module of a network with training-only outputs adds to lower.ResModule (see
    the module docstring); lower.py makes the class, so this module imports nothing from it."""

    _rd_eval_graph = None
    _rd_outputs = None

    @property
    def eval_graph(self) -> torch.fx.Graph:
        """The fx graph of the eval-mode forward (``graph`` is the training-mode one)."""
        return self._rd_eval_graph

    def recompile(self):
        pc = super().recompile()
        eg = self._rd_eval_graph
        if eg is None:  # during construction: set up by make_modal
            return pc
        src = eg.python_code(root_module="self")
        eval_fwd = _forward_from_src(src.src, src.globals, {})
        train_fwd = type(self).forward
        outputs = self._rd_outputs

        # the inputs by name, not *args: torch.fx.symbolic_trace makes one placeholder per parameter
        names = [n.target for n in eg.nodes if n.op == "placeholder"]
        assert all(n.isidentifier() and not keyword.iskeyword(n) for n in names), names  # fx's own names
        args = ", ".join(names)
        forward = _forward_from_src(f"def forward(self, {args}):\n    if self.training:\n"
                                    f"        return outputs(*train_fwd(self, {args}))\n"
                                    f"    return eval_fwd(self, {args})\n",
                                    {"outputs": outputs, "train_fwd": train_fwd, "eval_fwd": eval_fwd}, {})
        forward.__doc__ = "training: the namedtuple of every output; eval: the main output(s) only"
        type(self).forward = forward
        self._rd_eval_code = src.src
        return pc


def make_modal(cls: type, cont, g: torch.fx.Graph, cls_name: str, graph):
    """The root module (of class `cls`, a ModalMixin over lower.ResModule) over `cont` (its
    children) computing `g` in training mode and its eval form in eval mode; `graph` is the IR
    graph (its output names and `train_only` marks)."""
    gm = cls(cont, g, class_name=cls_name)
    gm._modules, gm._parameters, gm._buffers = cont._modules, cont._parameters, cont._buffers
    keep = [i for i in range(len(graph.outputs)) if i not in graph.train_only]
    gm._rd_outputs = outputs_class(outputs_name(graph), list(graph.output_names))
    gm._rd_eval_graph = eval_graph(g, keep)
    gm.recompile()
    return gm
