"""Gather by a buffer (`table[idx]`, `index(table, idx, dim=)`) and `roll` on named axes, against
torch and onnxruntime."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import resdsl


def _onnx_run(src, x, **params):
    model = resdsl.to_onnx(src, seed=0, **params)
    sess = ort.InferenceSession(model.SerializeToString())
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


GATHER = """
network g() {
    input x: [N, L=5, D=3]
    table = param([6, 4], init=normal(1.0)) as table
    ix = buffer([[5, 0], [2, 2], [1, 4]]) as idx
    rows = table[ix]
    cols = index(x, buffer([4, 0, 0, 2]) as pick, dim=1)
    output rows = rows, cols = cols
}
"""


def test_gather_matches_torch_and_onnxruntime():
    src = GATHER
    m = resdsl.build(src, seed=0)
    x = torch.randn(2, 5, 3)
    rows, cols = m(x)
    assert rows.shape == (3, 2, 4)
    assert torch.equal(rows, m.table[torch.tensor([[5, 0], [2, 2], [1, 4]])])
    assert torch.equal(cols, x[:, [4, 0, 0, 2]])
    model = resdsl.to_onnx(src, seed=0)
    sess = ort.InferenceSession(model.SerializeToString())
    o_rows, o_cols = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(o_rows, rows.detach().numpy())
    np.testing.assert_allclose(o_cols, cols.numpy())


@pytest.mark.parametrize("stmt,kind,what", [
    ("y = x[x]", "type", "must be a `buffer`"),
    ("i = buffer([0, 5]) as i; y = x[i]", "type", "out of range for an axis of size 5"),
    ("i = buffer([0.5, 1.0]) as i; y = x[i]", "type", "whole numbers"),
    ("y = index(x, buffer([0]) as i, dim=3)", "type", "out of range"),
])
def test_bad_gathers_are_errors_at_check_time(stmt, kind, what):
    src = f"network b() {{\n    input x: [L=5, D=3]\n    {stmt}\n    y\n}}\n"
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(src)
    assert e.value.kind == kind and what in e.value.message and e.value.span.line == 3


ROLL = """
network r(s: int = 1, t: int = -2) {
    input x: [N, C=2, H, W=5]
    roll([s, t], ["H", "W"])
}
"""


@settings(max_examples=12, deadline=None)
@given(s=st.integers(-9, 9), t=st.integers(-12, 12), h=st.integers(1, 6))
def test_roll_matches_torch_and_onnxruntime(s, t, h):
    x = torch.randn(2, 2, h, 5)
    m = resdsl.build(ROLL, s=s, t=t)
    want = torch.roll(x, (s, t), (2, 3))
    assert torch.equal(m(x), want)
    np.testing.assert_array_equal(_onnx_run(ROLL, x, s=s, t=t), want.numpy())  # H symbolic: a run-time cut


def test_roll_on_indices_and_errors():
    src = "network r() {\n    input x: [N, L=4, D=3]\n    roll(3, -1)\n}\n"
    x = torch.randn(2, 4, 3)
    assert torch.equal(resdsl.build(src)(x), torch.roll(x, 3, -1))
    for args, what in (('[1], ["Q"]', "not an axis"), ("[1, 2], [1]", "one shift per axis"),
                       ("[1, 2], [1, -2]", "one axis twice")):
        bad = f"network r() {{\n    input x: [N, L=4, D=3]\n    roll({args})\n}}\n"
        with pytest.raises(resdsl.ResdslError) as e:
            resdsl.graph(bad)
        assert what in e.value.message and e.value.span.line == 3


def test_torch_file_spells_gather_and_roll():
    src = resdsl.to_python(GATHER + ROLL.replace("network r", "network r2"),
                           network="r2")
    assert "torch.roll(x, (1, -2), (2, 3))" in src
