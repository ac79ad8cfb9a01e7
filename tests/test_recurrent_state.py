"""The ops that carry state across time steps (resdsl/ir/ops/recurrent.py): lif, convlstm and
reservoir against transcriptions of their equations (outputs and gradients), their options,
errors at the statement, and every target (torch file, ONNX, diagrams, summary)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resdsl


def net(decl, body):
    return f"network n() {{\n    input x: {decl}\n    {body}\n}}\n"


# ---------------------------------------------------------------- lif
def lif_ref(x, steps, decay, th, reset, surrogate, width):
    """u_t = decay u_{t-1} (1 - s_{t-1}) + x_t (soft: decay (u_{t-1} - th s_{t-1}) + x_t); the spike's
    gradient written out as the surrogate's derivative in an autograd Function."""
    def deriv(v):
        if surrogate == "rect":
            return ((v.abs() < width / 2).float()) / width
        if surrogate == "sigmoid":
            s = torch.sigmoid(4 * v / width)
            return 4 / width * s * (1 - s)
        return (1 / width) / (1 + (math.pi * v / width) ** 2)

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u > th).float()

        @staticmethod
        def backward(ctx, g):
            (u,) = ctx.saved_tensors
            return g * deriv(u - th)

    u = s = torch.zeros_like(x[: x.shape[0] // steps])
    out = []
    for x_t in x.chunk(steps, 0):
        u = decay * (u - th * s) + x_t if reset == "soft" else decay * u * (1 - s) + x_t
        s = Spike.apply(u)
        out.append(s)
    return torch.cat(out, 0)


@pytest.mark.parametrize("reset,surrogate", [("hard", "rect"), ("soft", "sigmoid"), ("hard", "atan"),
                                             ("soft", "rect")])
def test_lif_forward_and_surrogate_gradient(reset, surrogate):
    src = net("[N, C=3, L=5]", f'lif(4, decay=0.5, threshold=0.3, reset="{reset}", surrogate="{surrogate}", '
                               'width=0.8)')
    gm = resdsl.build(src, seed=0)
    x = (torch.randn(8, 3, 5, generator=torch.Generator().manual_seed(1)) * 0.6).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    y, want = gm(x), lif_ref(x2, 4, 0.5, 0.3, reset, surrogate, 0.8)
    assert torch.equal(y, want)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    (y * r).sum().backward()
    (want * r).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_lif_is_a_module_without_parameters():
    gm = resdsl.build(net("[N, D=4]", "lif(2) as spikes"), seed=0)
    assert type(gm.spikes).__name__ == "LIF" and not list(gm.parameters())
    assert "steps=2" in repr(gm.spikes)


# ---------------------------------------------------------------- convlstm
def test_convlstm_with_an_initial_cell_state():
    src = ("network n() {\n    input x: [N, C=2, H=5, W=5], c: [N, H2=3, H=5, W=5]\n"
           "    convlstm(x, c, 3, 2, kernel=5) as m\n}\n")
    gm = resdsl.build(src, seed=0)
    x, c = torch.randn(4, 2, 5, 5), torch.randn(2, 3, 5, 5)
    w, b = gm.m.weight, gm.m.bias
    c0 = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(5))
    h, c, out = torch.zeros(2, 3, 5, 5), c0, []
    for x_t in x.chunk(2, 0):
        i, f, g, o = F.conv2d(torch.cat([x_t, h], 1), w, b, padding=2).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        out.append(h)
    torch.testing.assert_close(gm(x, c0), torch.cat(out, 0))
    import onnxruntime as ort
    s = ort.InferenceSession(resdsl.to_onnx(src, seed=0).SerializeToString())
    names = [i.name for i in s.get_inputs()]
    got = s.run(None, dict(zip(names, [x.numpy(), c0.numpy()])))[0]
    np.testing.assert_allclose(got, gm(x, c0).detach().numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- reservoir
@pytest.mark.parametrize("temporal", ["none", "identity", "orthogonal", "cycle"])
def test_reservoir_temporal_residuals(temporal):
    src = net("[N, L=6, D=3]", f'reservoir(5, temporal="{temporal}", alpha=0.7, beta=0.4, '
                               'spectral_radius=1.2, input_scaling=0.5) as r')
    gm = resdsl.build(src, seed=0)
    r = gm.r
    assert not list(gm.parameters())
    assert r.weight_in.abs().max() <= 0.5
    assert abs(torch.linalg.eigvals(r.weight_rec.double()).abs().max().item() - 1.2) < 1e-5
    x = torch.randn(2, 6, 3, requires_grad=True)
    h, out = torch.zeros(2, 5), []
    for t in range(6):
        new = 0.4 * torch.tanh(x[:, t] @ r.weight_in.T + h @ r.weight_rec.T)
        if temporal == "identity":
            new = new + 0.7 * h
        elif temporal in ("orthogonal", "cycle"):
            new = new + 0.7 * h @ r.residual_map.T
        h = new
        out.append(h)
    y = gm(x)
    torch.testing.assert_close(y, torch.stack(out, 1))
    if temporal in ("orthogonal", "cycle"):
        torch.testing.assert_close(r.residual_map @ r.residual_map.T, torch.eye(5), atol=1e-6, rtol=0)
    else:
        assert "residual_map" not in dict(gm.named_buffers()) and "r.residual_map" not in gm.state_dict()
    y.sum().backward()
    assert x.grad.abs().sum() > 0 and all(b.grad is None for b in gm.buffers())


def test_summary_counts_no_trainable_parameters_for_a_reservoir():
    src = net("[N, L=6, D=3]", "reservoir(5) as r -> select(1, -1) -> linear(2) as fc")
    rows = {ln.split()[0]: ln.split() for ln in str(resdsl.summary(src)).splitlines() if ln.strip()}
    assert rows["r"][-2:] == ["0", "390*N"]  # frozen: no parameters; 6 steps x 5 x (3 + 5 + 5) MACs
    assert rows["total"][-2] == "12"
    g = resdsl.graph(src)
    assert sum(math.prod(p.shape) for n in g.nodes for p in n.params.values() if p.kind == "param") == 12


# ---------------------------------------------------------------- errors at the statement
@pytest.mark.parametrize("decl,body,kind,words", [
    ("[N=6, D=4]", "lif(4)", "shape", "multiple of 4"),
    ("[N, D=4]", 'lif(2, reset="zero")', "value", '"hard"'),
    ("[N, D=4]", "lif(2, decay=1.5)", "value", "[0, 1]"),
    ("[N, C=2, H=4, W=4]", "convlstm(3, 2, kernel=2)", "value", "odd"),
    ("[N, C=2, L=4]", "convlstm(3, 2)", "shape", "[T*N, C, H, W]"),
    ("[N, D=4]", "reservoir(5)", "shape", "[N, T, D]"),
    ("[N, L=3, D=4]", 'reservoir(5, temporal="random")', "value", '"orthogonal"'),
])
def test_bad_uses_are_errors_at_the_statement(decl, body, kind, words):
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(net(decl, body))
    err = e.value
    assert err.kind == kind and words in (err.message + " " + (err.help or "")), (err.kind, err.message, err.help)
    assert err.span is not None and err.span.line == 3


def test_onnx_needs_a_fixed_number_of_reservoir_steps(tmp_path, capsys):
    src = tmp_path / "r.res"
    src.write_text(net("[N, L, D=3]", "reservoir(4)"))
    gm = resdsl.build(str(src), seed=0)
    assert gm(torch.randn(2, 7, 3)).shape == (2, 7, 4)   # torch runs any length
    from resdsl.cli import main
    code = main(["compile", "--target", "onnx", str(src), "-o", str(tmp_path / "r.onnx")])
    err = capsys.readouterr().err
    assert code != 0 and "error[unsupported]" in err and f"{src}:3:" in err and "fixed number" in err


# ---------------------------------------------------------------- every target
def test_both_diagram_styles_and_the_summary_show_the_ops():
    src = net("[N, C=3, H=8, W=8]", "s = concat(x, x, dim=0) -> conv(4, 3, padding=1) as c -> lif(2) as spike\n"
                                    "    convlstm(s, 5, 2) as cell")
    for style in ("block", "circuit"):
        svg = resdsl.render(src, format="svg", style=style).data.decode()
        assert "LIF, T=2" in svg and "ConvLSTM 3×3, 5, T=2" in svg, style
    text = str(resdsl.summary(src))
    assert "spike" in text and "cell" in text
