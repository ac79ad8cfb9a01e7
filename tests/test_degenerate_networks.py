"""Networks with nothing (left) between input and output: a network of `identity` or `dropout`
after -O1/-O2, a network with no op at all, a network without an input. Every backend keeps the
input -> output wiring: the module's forward takes the input and returns it."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

import resdsl
from resdsl.cli import main
from resdsl.diagnostics import ResdslError

BODIES = {"identity": "identity", "dropout": "dropout(0.5)", "dropout0": "dropout(0.0)", "nothing": "",
          "identity-chain": "identity -> identity"}


def _src(body: str) -> str:
    return "network n {\n    input x: [N, 3]\n" + (f"    {body}\n" if body else "") + "}\n"


def _load_py(path):
    spec = importlib.util.spec_from_file_location(f"m_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("level", ["0", "1", "2"])
@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_compiled_torch_file_takes_and_returns_its_input(tmp_path, body, level):
    src = tmp_path / "net.res"
    src.write_text(_src(BODIES[body]))
    out = tmp_path / f"net_{body.replace('-', '_')}_{level}.py"
    assert main(["compile", str(src), "-t", "torch", f"-O{level}", "-o", str(out)]) == 0
    m = _load_py(out).n().eval()
    x = torch.randn(2, 3)
    assert torch.equal(m(x), x)


@pytest.mark.parametrize("level", [None, "1", "2"])
@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
def test_built_module_takes_and_returns_its_input(body, level):
    m = resdsl.build(_src(BODIES[body]), opt=level, seed=0).eval()
    x = torch.randn(2, 3)
    assert torch.equal(m(x), x)


@pytest.mark.parametrize("level", ["1", "2"])
def test_onnx_of_an_emptied_network_is_the_identity(tmp_path, level):
    import onnxruntime as ort
    model = resdsl.to_onnx(_src("identity"), opt=level, seed=0)
    sess = ort.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(0).standard_normal((2, 3)).astype("float32")
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    assert np.array_equal(y, x)


def test_network_without_input_is_a_located_error():
    with pytest.raises(ResdslError) as e:
        resdsl.graph("network n {\n    relu\n}\n")
    assert e.value.span is not None and e.value.span.line in (1, 2)
    with pytest.raises(ResdslError) as e:
        resdsl.graph("network n {\n}\n")
    assert e.value.span is not None and e.value.span.line == 1
