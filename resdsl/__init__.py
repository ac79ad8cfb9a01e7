"""resdsl: a declarative language for residual neural networks and its compiler."""
from .api import blocks, build, graph, load, optimize, to_onnx, to_python  # noqa: F401
from .diagnostics import ResdslError  # noqa: F401

__version__ = "0.1.0"
