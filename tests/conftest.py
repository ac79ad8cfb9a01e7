"""What the tests share: the checkout's root, the command line run as a user runs it, and
helpers more than one test file needs. Test files import the plain helpers
(`from conftest import ROOT, run_cli`); `root` and `cli` are also fixtures."""
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = ROOT / "stdlib"
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def root():
    return ROOT


# ------------------------------------------------------------------ the command line
def cli_env(env=None) -> dict:
    """The environment of a command: this checkout first on PYTHONPATH (so a subprocess runs
    the code under test, not another installed copy), then `env`."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **(env or {}))


def run_cli(*args, input=None, env=None, cwd=None, module="resdsl.cli", timeout=600):
    """`python -m resdsl.cli ARGS` (or `-m resdsl` with module="resdsl") in a fresh process:
    the CompletedProcess, text mode. `cwd` defaults to the checkout's root."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          input=input, env=cli_env(env), cwd=ROOT if cwd is None else cwd, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


# ------------------------------------------------------------------ programs
def check_error(src, **kw):
    """The ResdslError that elaborating `src` raises (the test fails if none is raised)."""
    import resdsl
    from resdsl.diagnostics import ResdslError
    with pytest.raises(ResdslError) as e:
        resdsl.graph(src, **kw)
    return e.value


def out_channels(src, **kw):
    """Channels of the (only) output of the network in `src`."""
    import resdsl
    return resdsl.graph(src, **kw).outputs[0].shape[1].size


def size_value(size, env):
    """A size of the IR (an int or a polynomial of named axes) for the axis sizes in `env`."""
    if isinstance(size, int):
        return size
    from resdsl.ir.runsizes import CEIL

    def sym(s):
        if s in env or s not in CEIL:
            return env[s]
        m, inner = CEIL[s]  # `ceil7(H/4)` (pad_to_multiple): the size rounded up to a multiple
        v = size_value(inner, env)
        return -(-v // m) * m
    total = sum(c * math.prod(sym(s) for s in mono) for mono, c in size.terms.items())
    return int(total) if total == int(total) else total


def import_file(path, name=None):
    """Import a generated Python file as a module."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def doc_res_blocks(docs):
    """Every ```res block of the markdown files `docs`, as pytest params named file:line."""
    out = []
    for doc in docs:
        text = doc.read_text()
        for m in re.finditer(r"```res\n(.*?)```", text, re.S):
            line = text[:m.start()].count("\n") + 2
            out.append(pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


# ------------------------------------------------------------------ weights
def randomize(gm, seed=1, scale=0.2):
    """Random parameters (normal, times `scale`) and BatchNorm statistics, so that no zero or
    identity initialisation hides a branch; returns the state_dict (detached)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in gm.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        for name, b in gm.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return {k: v.detach() for k, v in gm.state_dict().items()}


def assert_torch_file_equals_build(path, net, params, xs, tmp_path, key):
    """The standalone file of `net` (resdsl.to_python) builds, seeded, the module tree's state_dict
    (keys, order, values) and computes exactly its outputs on `xs`."""
    import torch

    import resdsl
    src = resdsl.to_python(path, network=net, **params)
    out = tmp_path / f"{key}_gen.py"
    out.write_text(src)
    mod = import_file(out, f"{key}_gen")
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    gen = fn(seed=3).eval()
    ref = resdsl.build(path, network=net, seed=3, **params).eval()
    assert list(gen.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(gen.state_dict()[k], v), k
    with torch.no_grad():
        assert torch.equal(gen(*xs), ref(*xs))


def assert_onnx_equals_build(path, net, params, xs):
    """onnxruntime on the exported network, randomised weights, computes the module tree's output."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import resdsl
    gm = resdsl.build(path, network=net, seed=0, **params)
    state = randomize(gm, scale=0.3)
    gm.eval()
    model = resdsl.to_onnx(path, network=net, weights=state, **params)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)})
    with torch.no_grad():
        want = gm(*xs)
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-4, atol=1e-5)
