"""copy.deepcopy, pickle and torch.save of the modules lower.py builds (ResModule and the modal
root of training.py), keeping what torch.fx's GraphModule would drop.

torch's GraphModule copies and pickles itself through its graph: the copy gets only the children
its graph names (in graph order, so state_dict keys reorder), none of the attributes resdsl adds
(the eval-mode graph of a network with training-only outputs, its outputs namedtuple, the timm
interface of heads.py, forward hooks), and comes back as a plain GraphModule. Here a copy is
nn.Module's copy (every attribute, deep-copied) of a fresh instance of the module's own class,
and a pickle stores the generated code (as torch does: fx graphs are not picklable) plus what
rebuilds the class: the importable base (ResModule, ModalModule), the class name, and the
interface's compiled methods as source.
"""
from __future__ import annotations

import copy
import importlib

import torch
import torch.fx
from torch.fx.graph_module import _CodeOnlyModule, _format_import_block, _forward_from_src, _WrappedCall
from torch.package import sys_importer


def own_call(cls: type) -> None:
    """Point `cls._wrapped_call` past every generated ``__call__`` of its ancestors.

    fx gives each instance its own class and a ``__call__`` that runs ``self._wrapped_call``,
    which calls ``super(cls).__call__``; when an ancestor class already has such a ``__call__``
    (a copy of a model, whose class derives from the original's; a model whose class heads.py
    made over that), that super call lands on it and runs the same ``_wrapped_call`` again,
    forever (RecursionError). Calling past the last generated one reaches nn.Module.__call__."""
    owners = [c for c in cls.__mro__ if "__call__" in vars(c) and issubclass(c, torch.fx.GraphModule)]
    if owners:
        cls._wrapped_call = _WrappedCall(owners[-1], None)


def deepcopy_module(self, memo: dict):
    """nn.Module's deepcopy of a resdsl module: every attribute of a fresh instance of its class."""
    cls = type(self)
    res = cls.__new__(cls)  # GraphModule.__new__: a new per-instance class derived from ours
    memo[id(self)] = res
    type(res).__name__ = cls.__name__
    for k, v in self.__dict__.items():
        if k != "_graph":
            res.__dict__[k] = copy.deepcopy(v, memo)
    res.graph = copy.deepcopy(self._graph, memo)  # the setter owns the graph and recompiles
    return res


def _base(cls: type) -> type:
    """The first class of `cls`'s ancestry that pickle can import (ResModule, ModalModule)."""
    for c in cls.__mro__:
        if not issubclass(c, torch.fx.GraphModule):
            continue  # heads.ModelInterface: a mixin, rebuilt by heads.mixed_class
        mod = importlib.import_module(c.__module__)
        if getattr(mod, c.__qualname__, None) is c:
            return c
    raise TypeError(f"no importable base class for {cls.__name__}")


def _code(graph: torch.fx.Graph) -> tuple:
    """(import block, forward source) of an fx graph, as GraphModule.__reduce__ stores it."""
    pc = graph.python_code(root_module="self")
    return _format_import_block(pc.globals, sys_importer), pc.src


def reduce_module(self):
    body = self.__dict__.copy()
    graph = body.pop("_graph")
    extra = {}
    if body.get("_rd_eval_graph") is not None:  # training.py: the eval form and the outputs tuple
        extra["eval"] = _code(body.pop("_rd_eval_graph"))
        out = body.pop("_rd_outputs")
        extra["outputs"] = (out._rd_key[0], list(out._rd_key[1]))
    mix = getattr(type(self), "_rd_mix_state", None)  # heads.py: the interface's class attributes
    return restore, (_base(type(self)), type(self).__name__, body, _code(graph), extra, mix)


def retrace(body: dict, code: tuple) -> torch.fx.Graph:
    """The fx graph of generated code over the modules of `body`, none traced into (as torch's
    own GraphModule unpickling does)."""
    imports, src = code
    fake = _CodeOnlyModule(body)
    type(fake).forward = _forward_from_src(imports + src, {})

    class KeepModules(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return True
    return KeepModules().trace(fake)


def restore(base: type, name: str, body: dict, code: tuple, extra: dict, mix):
    """Unpickle a module that reduce_module stored."""
    graph = retrace(body, code)
    if mix is not None:
        from .heads import mixed_class
        base = mixed_class(base, name, mix)
    res = base.__new__(base)
    type(res).__name__ = name
    res.__dict__.update(body)
    if extra:
        from .training import outputs_class
        res.__dict__["_rd_eval_graph"] = retrace(body, extra["eval"])
        res.__dict__["_rd_outputs"] = outputs_class(*extra["outputs"])
    res.graph = graph
    return res
