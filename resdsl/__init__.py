"""resdsl: a declarative language for residual neural networks and its compiler.

The API names are imported on first use (PEP 562), so that `resdsl` on the command line
starts inside code that handles Ctrl-C (exit status 130, no traceback): importing the
parser and elaborator is most of a small command's start-up."""
from typing import TYPE_CHECKING

from ._version import __version__  # noqa: F401

_API = ("PretrainedCfg", "blocks", "build", "create_model", "data_config", "get_pretrained_cfg", "graph", "list_models",
        "list_pretrained", "load", "load_pretrained", "optimize", "render", "summary", "to_onnx", "to_python",
        "transforms")
__all__ = ["__version__", "ResdslError", *_API]

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .api import (PretrainedCfg, blocks, build, create_model, data_config, get_pretrained_cfg,  # noqa: F401
                      graph, list_models, list_pretrained, load, load_pretrained, optimize, render, summary, to_onnx,
                      to_python, transforms)
    from .diagnostics import ResdslError  # noqa: F401


def __getattr__(name: str):
    if name == "ResdslError":
        from .diagnostics import ResdslError
        return ResdslError
    if name in _API or name == "api":
        import importlib
        api = importlib.import_module(".api", __name__)  # (`from . import api` would call this again)
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'resdsl' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API) | {"ResdslError"})
