"""resdsl: a declarative language for residual neural networks and its compiler."""
from ._version import __version__  # noqa: F401

from .api import (blocks, build, create_model, graph, list_models, load, optimize, render, summary,  # noqa: E402,F401
                  to_onnx, to_python)
from .diagnostics import ResdslError  # noqa: E402,F401
