"""stdlib/geometry.res's blocks, each against an independent statement of what it computes:
ComplexConv against torch's complex convolution, ModReLU against its formula on complex
tensors, the Poincaré ball's maps against torch.atanh and the identities of Möbius addition
(left cancellation, inverses, exp_0 and log_0 inverse to each other), the Chebyshev basis
against T_n(cos t) = cos(n t), graph propagation against adj @ h."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from conftest import randomize

import resdsl

GEN = torch.Generator().manual_seed(0)


def net(body, inputs, **kw):
    src = f"import geometry\n\nnetwork t() {{\n    input {inputs}\n{body}\n}}\n"
    gm = resdsl.build(src, network="t", seed=0, **kw)
    return gm.eval(), randomize(gm, scale=0.5)


def test_complex_conv_is_a_complex_convolution_1d_and_2d():
    for shape, conv in (((2, 6, 11), F.conv1d), ((2, 6, 9, 7), F.conv2d)):
        axes = "L" if len(shape) == 3 else "H, W"
        gm, P = net("    ComplexConv(4, 3, stride=2, padding=1) as cc", f"x: [N, 6, {axes}]")
        x = torch.randn(*shape, generator=GEN)
        z = torch.complex(x[:, :3], x[:, 3:])
        w = torch.complex(P["cc.wr.weight"], P["cc.wi.weight"])
        want = conv(z, w, stride=2, padding=1)
        with torch.no_grad():
            got = gm(x)
        torch.testing.assert_close(got, torch.cat([want.real, want.imag], 1), rtol=1e-5, atol=1e-5)


def test_modrelu_scales_the_modulus_and_keeps_the_phase():
    gm, P = net("    ModReLU(3) as m", "x: [N, 6, L]")
    x = torch.randn(2, 6, 10, generator=GEN)
    z = torch.complex(x[:, :3], x[:, 3:])
    b = P["m.bias"]
    want = F.relu(z.abs() + b) * z / z.abs()          # modReLU (Arjovsky et al. 2016)
    with torch.no_grad():
        got = gm(x)
    torch.testing.assert_close(got, torch.cat([want.real, want.imag], 1), rtol=1e-4, atol=1e-5)


def test_graph_propagate_is_adjacency_times_features():
    gm, _ = net("    GraphPropagate(adj, h)", "h: [N, V, F=4], adj: [N, V, V]")
    h, adj = torch.randn(2, 5, 4, generator=GEN), torch.rand(2, 5, 5, generator=GEN)
    with torch.no_grad():
        torch.testing.assert_close(gm(h, adj), adj @ h)


def test_chebyshev_basis_is_cos_n_theta():
    """With base and spline weights that pick one basis map each, ChebyKANConv(x) =
    silu(x) + T_n(tanh x); at tanh x = cos t, T_n = cos(n t)."""
    for n in range(4):
        gm, _ = net("    ChebyKANConv(1, 1, 3) as k", "x: [N, 1, H, W]")
        with torch.no_grad():
            gm.k.base.weight.fill_(1.0)
            gm.k.spline.weight.zero_()
            gm.k.spline.weight[0, n] = 1.0
            t = torch.linspace(0.1, 3.0, 12).reshape(1, 1, 3, 4)
            x = torch.atanh(torch.cos(t))
            torch.testing.assert_close(gm(x), F.silu(x) + torch.cos(n * t), rtol=1e-4, atol=1e-4)


def ball(c, shape=(3, 5, 4)):
    v = torch.randn(*shape, generator=GEN)
    return v / v.norm(dim=1, keepdim=True) * torch.rand(shape[0], 1, shape[2], generator=GEN) * 0.9 / math.sqrt(c)


def test_expmap0_logmap0_match_their_formulas_and_invert_each_other():
    c = 0.6
    gm, _ = net("    e = v -> Expmap0(0.6)\n    output e, e -> Logmap0(0.6)", "v: [N, C=5, L]")
    v = torch.randn(3, 5, 4, generator=GEN) * 0.7
    with torch.no_grad():
        e, back = gm(v)
    n = v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(e, torch.tanh(math.sqrt(c) * n) * v / (math.sqrt(c) * n))
    torch.testing.assert_close(back, v, rtol=1e-4, atol=1e-4)
    gm, _ = net("    y -> Logmap0(0.6)", "y: [N, C=5, L]")
    y = ball(c)
    n = y.norm(dim=1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(gm(y), torch.atanh(math.sqrt(c) * n) * y / (math.sqrt(c) * n),
                                   rtol=1e-4, atol=1e-5)


def test_mobius_addition_identities():
    c = 0.6
    gm, _ = net("    MobiusAdd(0.6, x, y)", "x: [N, C=5, L], y: [N, C=5, L]")
    x, y = ball(c), ball(c)
    with torch.no_grad():
        torch.testing.assert_close(gm(x, torch.zeros_like(x)), x)              # x (+) 0 = x
        torch.testing.assert_close(gm(-x, x), torch.zeros_like(x), atol=1e-6, rtol=0)  # (-x) (+) x = 0
        torch.testing.assert_close(gm(-x, gm(x, y)), y, rtol=1e-4, atol=1e-5)  # left cancellation
        s = gm(x, y)
    assert (s.norm(dim=1) < 1 / math.sqrt(c)).all()                            # stays in the ball


def test_ball_project_clamps_only_outside_points():
    gm, _ = net("    BallProject(1.0)", "x: [N, C=5, L]")
    x = ball(1.0)
    far = x / x.norm(dim=1, keepdim=True) * torch.linspace(1.0, 5.0, x.shape[2])   # all outside
    with torch.no_grad():
        torch.testing.assert_close(gm(x), x)
        n = gm(far).norm(dim=1)
    torch.testing.assert_close(n, torch.full_like(n, 1 - 4e-3))


def test_ball_maps_have_finite_gradients_at_the_origin():
    gm, _ = net("    e = v -> Expmap0(1.0)\n    output e -> Logmap0(1.0)", "v: [N, C=5, L]")
    v = torch.zeros(2, 5, 3, requires_grad=True)
    gm(v).sum().backward()
    assert torch.isfinite(v.grad).all()
