"""resdsl: a declarative language for residual neural networks and its compiler."""
from ._version import __version__  # noqa: F401

from .api import (PretrainedCfg, blocks, build, create_model, data_config, get_pretrained_cfg,  # noqa: E402,F401
                  graph, list_models, list_pretrained, load, load_pretrained, optimize, render, summary, to_onnx,
                  to_python, transforms)
from .diagnostics import ResdslError  # noqa: E402,F401
