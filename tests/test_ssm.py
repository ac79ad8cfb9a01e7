"""`selective_scan`, Mamba's selective scan (S6), against a direct PyTorch transcription of its
recurrence (one time step after the other): outputs and gradients on every input, over
hypothesis-drawn shapes (groups, optional d and delta_bias, softplus); the ONNX Scan through
onnxruntime; the standalone torch file; its shape errors at the statement."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.backends.torch.runtime_ssm import selective_scan


def recurrence(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t h_t + D u_t, a step at a time;
    B, C [N, S, L] or [N, G, S, L] (channel c reads group c // (D / G))."""
    n, d, length = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    B = B.repeat_interleave(d // B.shape[1], dim=1)  # [N, D, S, L]
    C = C.repeat_interleave(d // C.shape[1], dim=1)
    h = u.new_zeros(n, d, A.shape[1])
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + dt * B[:, :, :, t] * u[:, :, t, None]
        ys.append((h * C[:, :, :, t]).sum(-1))
    y = torch.stack(ys, -1)
    return y if D is None else y + D[:, None] * u


def _inputs(n, d, s, length, g, seed):
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).requires_grad_()
    bshape = (n, s, length) if g == 0 else (n, g, s, length)
    return (r(n, d, length), r(n, d, length, scale=0.5), r(d, s), r(*bshape), r(*bshape), r(d), r(d, scale=0.3))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), e=st.integers(1, 3), groups=st.sampled_from([0, 1, 2, 4]), s=st.integers(1, 5),
       length=st.integers(1, 40), optional=st.integers(0, 2), softplus=st.booleans(), seed=st.integers(0, 99))
def test_the_chunked_scan_is_the_recurrence(n, e, groups, s, length, optional, softplus, seed):
    """Every length (chunks of round(sqrt(L)) steps, the last one padded), with and without groups,
    d, delta_bias and softplus: outputs and the gradients of every input equal (float64)."""
    d = e * max(groups, 1)
    u, delta, A, B, C, D, bias = _inputs(n, d, s, length, groups, seed)
    A = -torch.exp(A) if softplus else A.detach().mul(0.5).requires_grad_()  # a positive a grows: still equal
    args = [u, delta, A, B, C, D, bias][:5 + optional]
    y = selective_scan(*args, delta_softplus=softplus)
    want = recurrence(*args, delta_softplus=softplus)
    torch.testing.assert_close(y, want, rtol=1e-9, atol=1e-9)
    w = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    leaves = [t for t in args if t.requires_grad and t.is_leaf]
    got = torch.autograd.grad((y * w).sum(), leaves)
    ref = torch.autograd.grad((want * w).sum(), leaves)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


def test_long_sequences_take_linear_memory():
    """A 56x56 token map (L = 3136, the paper's first stage) in one scan: the closed quadratic form
    would hold D S L^2 = 1.6e8 floats per order here; the chunked scan keeps a few [N, D, L, S]."""
    n, d, s, length = 1, 8, 4, 3136
    u, delta, A, B, C, D, bias = (t.detach().float() for t in _inputs(n, d, s, length, 0, 1))
    A = -torch.exp(A)
    y = selective_scan(u, delta, A, B, C, D, bias, delta_softplus=True)
    want = recurrence(u, delta, A, B, C, D, bias, delta_softplus=True)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-4)


NET = """network t(groups: int = 2) {{
    input x: [N, D=4, L=9]
    w = param([groups, 6, 4 // groups], init=normal(0.5)) as w
    a = param([4, 3], init=normal(1.0)) as a_log
    ds = param([4], init=ones) as ds
    bias = param([4], init=normal(0.3)) as bias
    bc = matmul(w, x -> reshape([-1, groups, 4 // groups, 9]))  # [N, G, 6, L]
    b, c = bc -> split([3, 3], dim=2)
    {call}
}}
"""
FULL = "selective_scan(x, x, -exp(a), b, c, ds, bias, delta_softplus=true)"


def _reference(m, x, full=True):
    w, a = m.get_parameter("w"), -torch.exp(m.get_parameter("a_log"))
    bc = torch.matmul(w, x.reshape(x.shape[0], w.shape[0], -1, 9))
    b, c = bc.split([3, 3], 2)
    if not full:
        return recurrence(x, x, a, b, c)
    return recurrence(x, x, a, b, c, m.get_parameter("ds"), m.get_parameter("bias"), delta_softplus=True)


@pytest.mark.parametrize("call", [FULL, "selective_scan(x, x, -exp(a), b, c)"])
def test_the_op_in_a_network_and_onnx(call):
    src = NET.format(call=call)
    m = resdsl.build(src, seed=0)
    x = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m(x)
        torch.testing.assert_close(y, _reference(m, x, call == FULL), rtol=1e-5, atol=1e-5)
    for opset in (17, 21):
        model = resdsl.to_onnx(src, seed=0, opset=opset)
        assert "Scan" in [nd.op_type for nd in model.graph.node]
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(out, y.numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_with_a_symbolic_length_and_ungrouped_b():
    src = """network t() {
    input x: [N, D=4, L]
    a = param([4, 2], init=normal(1.0)) as a
    b = x -> select(1, 0) -> unsqueeze(1) -> concat(x -> select(1, 1) -> unsqueeze(1), dim=1)
    selective_scan(x, x -> sigmoid, -exp(a), b, b * 0.5, delta_softplus=true)
}
"""
    m = resdsl.build(src, seed=0)
    sess = ort.InferenceSession(resdsl.to_onnx(src, seed=0).SerializeToString(), providers=["CPUExecutionProvider"])
    for length in (1, 7, 20):
        x = torch.randn(2, 4, length, generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            y = m(x)
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(out, y.numpy(), rtol=1e-5, atol=1e-5)


def test_the_standalone_file_defines_and_calls_the_scan(tmp_path):
    src = NET.format(call=FULL)
    text = resdsl.to_python(src)
    assert "def selective_scan(u, delta, a, b, c, d=None, delta_bias=None, delta_softplus=False):" in text
    assert "selective_scan(x, x, " in text and "delta_softplus=True)" in text
    path = tmp_path / "t.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("ssm_standalone", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.t(seed=0)
    m = resdsl.build(src, seed=0)
    net.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), m(x))


@pytest.mark.parametrize("call,message", [
    ("selective_scan(x, x -> select(2, 0), -exp(a), b, c)", "delta of u's shape"),
    ("selective_scan(x, x, -exp(a) -> transpose(0, 1), b, c)", "a of shape [D, S]"),
    ("selective_scan(x, x, -exp(a), b -> select(2, 0), c)", "b of shape [N, S, L] or [N, G, S, L]"),
    ("selective_scan(x, x, -exp(a), b, c, bias -> unsqueeze(0))", "d of shape [4]"),
])
def test_shape_errors_are_located_at_the_call(call, message, tmp_path):
    path = tmp_path / "scan.res"
    path.write_text(NET.format(call=call))
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(str(path))
    err = e.value
    assert message in err.message, err.message
    assert str(err.span) == f"{path}:9:5"  # the line of the call, its first column


def test_groups_must_divide_the_channels():
    src = NET.format(call=FULL).replace("groups: int = 2", "groups: int = 2").replace(
        "b, c = bc -> split([3, 3], dim=2)", "b, c = bc -> split([3, 3], dim=2)\n    b3 = concat(b, b -> select(1, 0) -> unsqueeze(1), dim=1)"
    ).replace("-exp(a), b, c,", "-exp(a), b3, concat(c, c -> select(1, 0) -> unsqueeze(1), dim=1),")
    with pytest.raises(resdsl.ResdslError, match="3 groups .* must divide u's 4 channels"):
        resdsl.graph(src)


def test_torch_compile_traces_the_scan_whole():
    """torch.compile sees one graph (fullgraph: no graph break; the loops unroll, ~2 sqrt(L) steps)
    that computes the same values. (aot_eager: inductor's CPU kernels are not what is tested here.)"""
    u, delta, A, B, C, D, bias = (t.detach().float() for t in _inputs(2, 8, 3, 30, 2, 5))
    f = torch.compile(selective_scan, fullgraph=True, backend="aot_eager")
    args = (u, delta, -torch.exp(A), B, C, D, bias)
    torch.testing.assert_close(f(*args, delta_softplus=True), selective_scan(*args, delta_softplus=True))


def test_res_vmamba_t_is_the_authors_configuration():
    """res_vmamba_t (stdlib/res_vmamba.res) at the paper's size: the parameters of the authors' code's
    default configuration (ChiShengChen/ResVMamba utils/config.py: VMamba-T, dims 96-192-384-768,
    depths 2-2-9-2, state 16, dt rank ceil(dim / 16), SSM ratio 2, MLP ratio 4, 241 classes), counted
    from the shapes of its modules, plus our learned res_proj convs; a forward at 224 x 224 on meta."""
    import math
    import os
    dims, depths, s, classes = [96, 192, 384, 768], [2, 2, 9, 2], 16, 241

    def ss2d(c):
        di, r = 2 * c, math.ceil(c / 16)
        return (c * 2 * di + di * 9 + di + 4 * (r + 2 * s) * di + 4 * di * r + 4 * di + 4 * di * s + 4 * di
                + 2 * di + di * c)

    def block(c):
        return 2 * c + ss2d(c) + 2 * c + (c * 4 * c + 4 * c + 4 * c * c + c)

    want = 3 * 96 * 16 + 96 + 2 * 96 + 2 * 768 + 768 * classes + classes
    for i, c in enumerate(dims):
        want += depths[i] * block(c)
        if i < 3:
            want += c * 2 * c * 4 + 2 * c + 2 * 2 * c  # downsample: 2x2 conv, LayerNorm
            want += c * 2 * c + 2 * c                  # res_proj (the authors' code draws it afresh)
    root = os.path.join(os.path.dirname(__file__), "..", "stdlib", "res_vmamba.res")
    m = resdsl.build(root, network="res_vmamba_t", device="meta")
    assert sum(p.numel() for p in m.parameters()) == want
    assert m(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, classes)
