"""Gated skipping (`skip_gate`), routing among experts (`route`, `combine`) and per-sample
weights (`resfield`): each op against its equations, in training and at inference, its errors
at the statement, and every target (the module tree, the torch file, ONNX, both diagram
styles, the summary) on one network that uses them all."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import randomize

import resdsl

ALL = """network dyn() {
    input x: [N, C=4, H=8, W=8], t: [N]
    g = x -> adaptive_avgpool(1) -> skip_gate as gate
    y = g * (x -> conv(4, 3, padding=1) as conv) + (1 - g) * x
    tok = y -> rearrange("n c h w -> n (h w) c")
    w, balance = tok -> route(3, k=2) as router
    m = combine(w, tok -> linear(4) as e0, tok -> linear(4) as e1, tok -> linear(4) as e2)
    q, vq_loss = m -> vq(8) as quant
    output resfield(q, t, 5, 10, 2) as field, balance = balance, vq_loss = vq_loss
}
"""
LABELS = ["skip gate", "router 3, top-2", "combine 3 experts", "VQ 8 codes", "resfield 5, 10 frames, rank 2"]


def net(decl, body):
    return f"network n() {{\n    input x: {decl}\n    {body}\n}}\n"


# ---------------------------------------------------------------- skip_gate
def test_skip_gate_is_hard_at_inference_and_straight_through_in_training():
    gm = resdsl.build(net("[N, C=6, H=4, W=4]", "adaptive_avgpool(1) -> skip_gate as g"), seed=0)
    x = torch.randn(64, 6, 4, 4, requires_grad=True)
    z = F.linear(x.mean((2, 3)), gm.g.weight, gm.g.bias)
    p = torch.sigmoid(z)
    gm.eval()
    torch.testing.assert_close(gm(x), (p > 0.5).float().view(-1, 1, 1, 1))
    gm.train()
    y = gm(x)
    torch.testing.assert_close(y, (p > 0.5).float().view(-1, 1, 1, 1))  # hard forward
    assert 0 < y.sum() < 64  # both decisions occur
    r = torch.randn(64, 1, 1, 1)
    (gx,) = torch.autograd.grad((y * r).sum(), x)
    (want,) = torch.autograd.grad((p * r.view(-1, 1)).sum(), x)  # the sigmoid's gradient
    torch.testing.assert_close(gx, want)


def test_soft_gate_and_threshold():
    gm = resdsl.build(net("[N, D=6]", 'skip_gate(mode="soft", threshold=0.7) as g'), seed=0)
    x = torch.randn(32, 6)
    p = torch.sigmoid(F.linear(x, gm.g.weight, gm.g.bias))
    torch.testing.assert_close(gm.train()(x), p)
    torch.testing.assert_close(gm.eval()(x), (p > 0.7).float())


# ---------------------------------------------------------------- route / combine
def test_route_gates_and_balance_loss():
    """Top-k of softmax(x W^T), renormalised with normalize=true; the Switch loss
    E * sum_e f_e P_e, whose gradient reaches the router."""
    gm = resdsl.build(net("[N, L=7, D=5]", "g, aux = route(4, k=2, normalize=true) as r\n    output g, aux = aux"), seed=0)
    x = torch.randn(3, 7, 5)
    g, aux = gm(x)
    p = torch.softmax(x @ gm.r.weight.T, -1)
    top, idx = p.topk(2, -1)
    want = torch.zeros_like(p).scatter(-1, idx, top / top.sum(-1, keepdim=True))
    torch.testing.assert_close(g, want)
    assert torch.all((g > 0).sum(-1) == 2)
    f = torch.zeros_like(p).scatter(-1, idx, 1.0).reshape(-1, 4).mean(0) / 2
    torch.testing.assert_close(aux, 4 * (f * p.reshape(-1, 4).mean(0)).sum())
    aux.backward()
    assert gm.r.weight.grad.abs().sum() > 0


def test_combine_broadcasts_gates_over_feature_maps():
    """gates [N, E] weight expert outputs [N, C, H, W] (a mixture of convolutional experts)."""
    src = net("[N, C=3, H=5, W=5]", "g, aux = adaptive_avgpool(1) -> flatten -> route(2) as r\n"
              "    combine(g, x -> conv(3, 3, padding=1) as a, x -> conv(3, 1) as b)")
    gm = resdsl.build(src, seed=0).eval()
    x = torch.randn(2, 3, 5, 5)
    p = torch.softmax(x.mean((2, 3)) @ gm.r.weight.T, -1)
    g = torch.where(p >= p.max(-1, keepdim=True).values, p, torch.zeros_like(p))
    want = g[:, 0, None, None, None] * gm.a(x) + g[:, 1, None, None, None] * gm.b(x)
    torch.testing.assert_close(gm(x), want)


# ---------------------------------------------------------------- resfield
def test_resfield_on_flat_inputs():
    src = "network n() {\n    input x: [N, D=3], t: [N]\n    resfield(x, t, 4, 6, 2, bias=false) as f\n}\n"
    gm = resdsl.build(src, seed=0)
    randomize(gm)
    x, t = torch.randn(5, 3), torch.tensor([0, 5, 2, 2, 1])
    w = gm.f.weight + torch.einsum("nr,roi->noi", gm.f.coeffs[t], gm.f.basis)
    torch.testing.assert_close(gm(x, t), torch.einsum("ni,noi->no", x, w))
    assert gm.f.bias is None


# ---------------------------------------------------------------- errors at the statement
@pytest.mark.parametrize("decl,body,kind,words", [
    ("[N, C=4, H=3, W=3]", "skip_gate", "shape", "adaptive_avgpool(1)"),
    ("[N, D=4]", 'skip_gate(mode="gumbel")', "value", '"straight_through"'),
    ("[N, D=4]", "skip_gate(threshold=1.0)", "value", "(0, 1)"),
    ("[N, D=4]", "g, a = route(3, k=4)", "value", "at most 3"),
    ("[N, D=4]", "g, a = route(1)", "value", "at least 2"),
    ("[N, D=4]", "g, a = route(3)\n    combine(g, x, x)", "shape", "3 experts but 2"),
    ("[N, L=2, D=4]", "g, a = route(2)\n    combine(g, x, x -> linear(3))", "shape", "one shape"),
    ("[N, D=4]", "resfield(x, x, 4, 3, 2)", "shape", "t of shape [N]"),
    ("[N, D=4]", "q, l = vq(1)", "value", "at least 2"),
])
def test_bad_uses_are_errors_at_the_statement(decl, body, kind, words):
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(net(decl, body))
    err = e.value
    assert err.kind == kind and words in (err.message + " " + (err.help or "")), (err.kind, err.message, err.help)
    assert err.span is not None and err.span.line >= 3


# ---------------------------------------------------------------- every target
def test_every_target_on_one_network(tmp_path):
    gm = resdsl.build(ALL, seed=0)
    state = randomize(gm, scale=0.5)
    gm.eval()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 9])
    with torch.no_grad():
        want = gm(x, t)
    assert [tuple(w.shape) for w in want] == [(2, 64, 5), (), ()]
    # the standalone torch file
    path = tmp_path / "dyn_gen.py"
    path.write_text(resdsl.to_python(ALL))
    spec = importlib.util.spec_from_file_location("dyn_gen", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gen = mod.dyn().eval()
    gen.load_state_dict(state)
    with torch.no_grad():
        for a, b in zip(gen(x, t), want):
            torch.testing.assert_close(a, b)
    # ONNX: the inference form (hard gates)
    import onnxruntime as ort
    sess = ort.InferenceSession(resdsl.to_onnx(ALL, weights=state).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)", "tensor(int64)"]  # t: frame indices
    got = sess.run(None, {"x": x.numpy(), "t": t.numpy()})
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5)
    # both diagram styles and the summary name each op
    src = tmp_path / "dyn.res"
    src.write_text(ALL)
    for style in ("block", "circuit"):
        out = tmp_path / f"{style}.dot"
        subprocess.run([sys.executable, "-m", "resdsl", "render", str(src), "-o", str(out), "--style", style,
                        "--depth", "all"], check=True, capture_output=True)
        text = out.read_text()
        assert all(label in text for label in LABELS), style
    summ = subprocess.run([sys.executable, "-m", "resdsl", "summary", str(src), "--depth", "all"], check=True,
                          capture_output=True, text=True).stdout
    for name in ("gate", "router", "combine", "quant", "field"):
        assert f"\n{name} " in summ
