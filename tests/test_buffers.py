"""Buffers: compile-time tensors (`buffer(value, persistent=)`) registered on the torch module
tree, in the standalone torch file and as ONNX initializers; in the state_dict exactly when
persistent, never counted as parameters."""

import importlib.util

import numpy as np
import onnxruntime as ort
import pytest
import torch

import resdsl
from resdsl.backends.summary import format_summary

SRC = """
fn rel_row(i: int, j: int, w: int) = (i // w - j // w + w - 1) * (2 * w - 1) + i % w - j % w + w - 1
fn rel_index(w: int) = [rel_row(i, j, w) for i in range(w * w) for j in range(w * w)]

network t(w: int = 2) {
    input x: [N, L=4, D=3]
    table = param([(2 * w - 1) ** 2, 3], init=normal(1.0)) as relative_position_bias_table
    idx = buffer(rel_index(w)) as relative_position_index
    mask = buffer([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.5, -2.0, 3.0]], persistent=false) as mask
    bias = table[idx] -> reshape([4, 4, 3]) -> sum(dim=1)
    x * mask + bias
}
"""


def _swin_index(w):
    """torchvision's define_relative_position_index, as the reference."""
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += w - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1).flatten()


def _reference(m, x):
    bias = m.relative_position_bias_table[_swin_index(2)].view(4, 4, 3).sum(1)
    return x * m.mask + bias


@pytest.fixture(scope="module")
def net():
    return resdsl.build(SRC, seed=0)


def test_state_dict_holds_persistent_buffers_only(net):
    assert list(net.state_dict()) == ["relative_position_bias_table", "relative_position_index"]
    assert sorted(dict(net.named_buffers())) == ["mask", "relative_position_index"]
    assert torch.equal(net.relative_position_index, _swin_index(2))
    assert net.relative_position_index.dtype == torch.int64 and net.mask.dtype == torch.float32
    assert sum(p.numel() for p in net.parameters()) == 27  # the table only
    assert resdsl.graph(SRC).num_params() == 27


def test_forward_and_weights(net):
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(net(x), _reference(net, x))
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    loaded = resdsl.build(SRC, weights=state)  # a state_dict without the non-persistent mask
    assert torch.equal(loaded.mask, net.mask)  # the constant keeps its value
    torch.testing.assert_close(loaded(x), _reference(loaded, x))


def test_larger_window_matches_torchvision_index():
    src = SRC.split("network")[0] + "network w7() {\n    input x: [N, D=2]\n    y = buffer(rel_index(7)) as idx\n    x\n}\n"
    assert torch.equal(resdsl.build(src).idx, _swin_index(7))


def test_meta_build_keeps_every_buffer_meta(net):
    """A meta build is all meta (a meta forward works); a constant outside the state_dict is then
    still meta after load_state_dict(assign=True), as pretrained.build_pretrained checks."""
    m = resdsl.build(SRC, device="meta")
    assert m.relative_position_index.is_meta and m.mask.is_meta
    assert m(torch.empty(2, 4, 3, device="meta")).shape == (2, 4, 3)


def test_standalone_file(tmp_path, net):
    src = resdsl.to_python(SRC)
    assert 'register_buffer(\n            "mask"' in src or 'register_buffer("mask"' in src
    assert "persistent=False" in src
    f = tmp_path / "t_file.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location("t_file", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.t(seed=0)
    assert list(m.state_dict()) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    assert torch.equal(m.mask, net.mask)  # survived the file's to_empty
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(m(x), net(x))


def test_onnx_initializers_and_onnxruntime(net):
    model = resdsl.to_onnx(SRC, seed=0)
    inits = {i.name: i for i in model.graph.initializer}
    assert {"relative_position_bias_table", "relative_position_index", "mask"} <= set(inits)
    sess = ort.InferenceSession(model.SerializeToString())
    x = torch.randn(3, 4, 3)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(out, net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_summary_lists_buffers_not_parameters():
    text = format_summary(resdsl.graph(SRC))
    total = next(ln for ln in text.splitlines() if ln.startswith("total"))
    assert total.split()[-2] == "27"
    note = next(ln for ln in text.splitlines() if ln.startswith("buffers"))
    assert "relative_position_index [16] int64" in note and "mask [4, 3] float32, not in the state_dict" in note


@pytest.mark.parametrize("value,kind,what", [
    ("[[1, 2], [3]]", "value", "rectangular"),
    ("[1, \"a\"]", "type", "numbers"),
    ("[]", "value", "size 0"),
    ("[1.5, 2]", "value", "whole numbers"),
])
def test_bad_values_are_errors(value, kind, what):
    extra = ', dtype="int64"' if value == "[1.5, 2]" else ""
    src = f"network b() {{\n    input x: [N, D=2]\n    y = buffer({value}{extra}) as c\n    x\n}}\n"
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(src)
    assert e.value.kind == kind and what in e.value.message and e.value.span.line == 3


def test_bad_dtype_is_an_error():
    src = "network b() {\n    input x: [N, D=2]\n    y = buffer([1], dtype=\"int8\") as c\n    x\n}\n"
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(src)
    assert e.value.kind == "value" and "int64" in e.value.message


def test_float_buffer_in_arithmetic_and_dtype():
    src = "network b() {\n    input x: [N, D=3]\n    c = buffer([1, 2, 3], dtype=\"float32\") as c\n    x + c\n}\n"
    m = resdsl.build(src)
    assert m.c.dtype == torch.float32
    torch.testing.assert_close(m(torch.zeros(2, 3)), torch.tensor([[1.0, 2, 3]] * 2))


TRICKY = """
fn tricky(a: int, b: float) = [(1 - 2) ** a, -1 ** a, a - (a - 1) - 1, 2.0 ** -a, (a if a > 1 else b) * 2,
                               a ** 2 ** -1, (a + 1) ** 2, -a ** 2,
                               1 if not a == 2 or a < 3 and b > 0 else 0, a // 2 % 3, -(a + b), abs(-b),
                               max([a, 5]) + len(range(a)) + sum([x * x for x in range(a) if x % 2 == 0]),
                               floor(b) + ceil(b) + round(b) + sqrt(4.0) + log(8.0, 2.0), [2, 3][a % 2]]
fn grid(n: int, scale: float = 0.5) = [[tricky(i + 1, scale * j) for j in range(n)] for i in range(n)]

network k() {
    input x: [N, D=2]
    g = buffer(grid(3), dtype="float32") as table
    x
}
"""


def test_torch_file_computes_buffers_with_the_fns_in_python(tmp_path):
    """The buffer is written as `grid(3)` with the fns translated to Python: the file's values equal
    the compiler's (precedence, unary minus, conditionals, comprehensions, builtins)."""
    src = resdsl.to_python(TRICKY)
    assert "def tricky(a, b):" in src and "def grid(n, scale=0.5):" in src and "grid(3, 0.5)" in src
    assert "import math" in src
    f = tmp_path / "k_file.py"
    f.write_text(src)
    spec = importlib.util.spec_from_file_location("k_file", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.testing.assert_close(mod.k(seed=0).table, resdsl.build(TRICKY).table, rtol=0, atol=0)


def test_untranslatable_fn_falls_back_to_values():
    """A fn whose name the file uses (`torch`), or a negative base of `**`, is written as values
    (135 of them: packed many a line under `# fmt: off`, bufcode.py)."""
    src = TRICKY.replace("grid", "torch").replace("(1 - 2) ** a", "(-1) ** a")
    text = resdsl.to_python(src)
    assert "def torch" not in text and ("torch.tensor(\n" in text or "torch.tensor([\n" in text)


def test_translated_fns_are_ruff_clean(tmp_path):
    import shutil
    import subprocess
    import sys
    ruff = [shutil.which("ruff")] if shutil.which("ruff") else [sys.executable, "-m", "ruff"]
    (tmp_path / "k_file.py").write_text(resdsl.to_python(TRICKY))
    for args in (["check", "--select", "E,W,F,N,B"], ["format", "--check"]):
        r = subprocess.run(ruff + args + ["--no-cache", "--isolated", "--line-length", "100", str(tmp_path)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
