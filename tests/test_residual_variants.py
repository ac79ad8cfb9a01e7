"""Residual variants (stdlib/variants.res), each checked against a direct PyTorch
transcription of its paper's equations, with the weights taken by name from the built module (and randomised first, so zero or identity inits hide nothing)."""
import math
import os

import pytest
import torch
import torch.nn.functional as F

import resdsl

from conftest import ROOT, randomize

VARIANTS = os.path.join(ROOT, "stdlib", "variants.res")


def build(body, shape="[N, L=5, D=8]", seed=0):
    src = f"import variants\nnetwork n() {{\n    input x: {shape}\n{body}\n}}\n"
    return resdsl.build(src, seed=seed).eval()


def lin(P, name, x):
    return F.linear(x, P[f"{name}.weight"], P.get(f"{name}.bias"))


X = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- scaled branches
@pytest.mark.parametrize("variant", ["ReZero", "SkipInit"])
def test_rezero_skipinit(variant):
    """x_{i+1} = x_i + alpha_i F(x_i), alpha_0 = 0 (Bachlechner et al. 2020, eq. 4; De & Smith 2020)."""
    gm = build(f"    {variant}(linear(8)) as blk")
    assert gm.blk.alpha.shape == (1,) and gm.blk.alpha.item() == 0.0
    torch.testing.assert_close(gm(X), X)  # identity at init
    P = randomize(gm, scale=0.5)
    torch.testing.assert_close(gm(X), X + P["blk.alpha"] * lin(P, "blk.f", X))


def test_depth_mup_branch_multiplier():
    """x_{l+1} = x_l + L^{-1/2} f(x_l) (depth-muP)."""
    gm = build("    DepthMuP(linear(8), 16) as blk")
    P = randomize(gm, scale=0.5)
    torch.testing.assert_close(gm(X), X + lin(P, "blk.f", X) / 4.0)


# ---------------------------------------------------------------- Fixup
def test_fixup_init_rule():
    """Zhang et al. 2019, sec. 3 (m = 2, L = 3): conv1 std sqrt(2 / (c k^2)) L^{-1/2}, the last conv
    of each branch and the classifier 0, scalar multipliers 1, scalar biases 0."""
    gm = resdsl.build(VARIANTS, network="fixup_resnet_cifar", seed=0)
    P = dict(gm.named_parameters())
    assert set(P) >= {"bias1", "bias2", "layer1.0.bias1a", "layer1.0.bias1b", "layer1.0.bias2a",
                      "layer1.0.bias2b", "layer1.0.scale"}
    for i in range(3):
        w = P[f"layer1.{i}.conv1.weight"]
        want = math.sqrt(2 / (16 * 9)) * 3 ** -0.5
        assert abs(w.std().item() / want - 1) < 0.1
        assert torch.all(P[f"layer1.{i}.conv2.weight"] == 0)
        assert P[f"layer1.{i}.scale"].item() == 1.0
        for b in ("bias1a", "bias1b", "bias2a", "bias2b"):
            assert P[f"layer1.{i}.{b}"].item() == 0.0
    assert torch.all(P["fc.weight"] == 0) and torch.all(P["fc.bias"] == 0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gm.modules())


def test_fixup_forward_equations():
    gm = resdsl.build(VARIANTS, network="fixup_resnet_cifar", seed=0)
    P = randomize(gm, scale=0.5)
    x = torch.randn(2, 3, 32, 32)

    def conv(name, h):
        return F.conv2d(h, P[f"{name}.weight"], padding=1)

    h = torch.relu(conv("conv1", x) + P["bias1"])
    for i in range(3):
        p = f"layer1.{i}"
        out = conv(f"{p}.conv1", h + P[f"{p}.bias1a"])
        out = torch.relu(out + P[f"{p}.bias1b"])
        out = conv(f"{p}.conv2", out + P[f"{p}.bias2a"])
        out = out * P[f"{p}.scale"] + P[f"{p}.bias2b"]
        h = torch.relu(out + h)
    h = h.mean((2, 3)) + P["bias2"]
    torch.testing.assert_close(gm(x), lin(P, "fc", h))


# ---------------------------------------------------------------- LAuReL
def test_laurel_rw():
    """LAuReL-RW: x_{i+1} = alpha f(x_i) + beta x_i, alpha_0 = beta_0 = 1."""
    gm = build("    LaurelRW(linear(8)) as blk")
    assert gm.blk.alpha.item() == 1.0 and gm.blk.shortcut.beta.item() == 1.0
    P = randomize(gm, scale=0.5)
    torch.testing.assert_close(gm(X), P["blk.alpha"] * lin(P, "blk.f", X) + P["blk.shortcut.beta"] * X)


def test_laurel_lr():
    """LAuReL-LR: x_{i+1} = f(x_i) + x_i + B A x_i with A: D -> r, B: r -> D (B_0 = 0)."""
    gm = build("    LaurelLR(linear(8), 2) as blk")
    assert gm.blk.shortcut.A.weight.shape == (2, 8) and gm.blk.shortcut.B.weight.shape == (8, 2)
    assert torch.all(gm.blk.shortcut.B.weight == 0)
    P = randomize(gm, scale=0.5)
    A, B = P["blk.shortcut.A.weight"], P["blk.shortcut.B.weight"]
    torch.testing.assert_close(gm(X), lin(P, "blk.f", X) + X + X @ A.T @ B.T)


# ---------------------------------------------------------------- orthogonal update
def test_orthogonal_residual_update():
    """x_{n+1} = x_n + f_perp, f_perp = f - (<x, f> / (<x, x> + eps)) x (per token)."""
    gm = build("    OrthogonalResidual(linear(8)) as blk")
    P = randomize(gm, scale=0.5)
    f = lin(P, "blk.f", X)
    s = (X * f).sum(-1, keepdim=True) / ((X * X).sum(-1, keepdim=True) + 1e-6)
    y = gm(X)
    torch.testing.assert_close(y, X + f - s * X)
    # the update is orthogonal to the stream
    assert ((y - X) * X).sum(-1).abs().max() < 1e-4


# ---------------------------------------------------------------- hyper-connections
def _hc_reference(P, p, H, T, dynamic):
    """Zhu et al. 2024, eqs. 1-5 (static) and 6-8 (dynamic), H: [B, L, n, D]."""
    am = P[f"{p}.static_alpha_m"][:, 0]          # A_m in R^n
    ar = P[f"{p}.static_alpha_r"]                # A_r in R^{n x n}
    beta = P[f"{p}.static_beta"][:, 0]           # B in R^{1 x n}
    if dynamic:
        hn = F.layer_norm(H, H.shape[-1:], P[f"{p}.norm.weight"], P[f"{p}.norm.bias"])
        sa, sb = P[f"{p}.s_alpha"], P[f"{p}.s_beta"]
        am = sa * torch.tanh(hn @ P[f"{p}.dynamic_alpha_m.weight"].T)[..., 0] + am       # [B, L, n]
        ar = sa * torch.tanh(hn @ P[f"{p}.dynamic_alpha_r.weight"].T) + ar               # [B, L, n, n]
        beta = sb * torch.tanh(hn @ P[f"{p}.dynamic_beta.weight"].T)[..., 0] + beta     # [B, L, n]
        h0 = torch.einsum("bln,blnd->bld", am, H)
        return torch.einsum("bln,bld->blnd", beta, T(h0)) + torch.einsum("blkj,blkd->bljd", ar, H)
    h0 = torch.einsum("n,blnd->bld", am, H)
    return torch.einsum("n,bld->blnd", beta, T(h0)) + torch.einsum("kj,blkd->bljd", ar, H)


@pytest.mark.parametrize("dynamic", [False, True])
def test_hyper_connections(dynamic):
    dyn = "true" if dynamic else "false"
    gm = build(f"    HyperExpand(3)\n"
               f"    HyperConnection(linear(8), 3, index=0, dynamic={dyn}) as hc0\n"
               f"    HyperConnection(linear(8), 3, index=1, dynamic={dyn}) as hc1\n"
               f"    HyperReduce()")
    # static init: A_m = e_(index mod n), A_r = I, B = 1
    assert gm.hc1.static_alpha_m[:, 0].tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(gm.hc1.static_alpha_r, torch.eye(3))
    assert gm.hc0.static_beta[:, 0].tolist() == [1.0, 1.0, 1.0]
    if dynamic:
        assert torch.all(gm.hc0.dynamic_alpha_r.weight == 0) and gm.hc0.s_alpha.item() == pytest.approx(0.01)
    P = randomize(gm, scale=0.5)
    H = X.unsqueeze(2).expand(3, 5, 3, 8)
    for p in ("hc0", "hc1"):
        H = _hc_reference(P, p, H, lambda h: lin(P, f"{p}.layer", h), dynamic)
    torch.testing.assert_close(gm(X), H.sum(2))


# ---------------------------------------------------------------- value residual
def test_value_residual_resformer():
    """ResFormer: U_n = softmax(Q_n K_n^T / sqrt(e)) (lam_n V_n + lam_1 V_1), lam = 1/2, V_1 the first
    layer's values; pre-norm layers x + Attn(LN(x)), x + MLP(LN(x))."""
    gm = resdsl.build(VARIANTS, network="resformer_tiny", seed=0).eval()
    P = randomize(gm, scale=0.5)
    tok = torch.randint(0, 100, (2, 7))
    heads, d = 4, 32

    def ln(name, x):
        return F.layer_norm(x, (d,), P[f"{name}.weight"], P[f"{name}.bias"])

    def attention(p, h, v):
        q, k = lin(P, f"{p}.q_proj", h), lin(P, f"{p}.k_proj", h)
        split = lambda t: t.view(t.shape[0], t.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
        a = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads), -1)
        u = (a @ split(v)).transpose(1, 2).reshape(h.shape)
        return lin(P, f"{p}.out_proj", u)

    x = P["embed.weight"][tok]
    v1 = None
    for i in range(3):
        p = f"layer{i}"
        h = ln(f"{p}.norm1", x)
        v = lin(P, f"{p}.v_proj", h)
        if v1 is None:
            v1, vmix = v, v
        else:
            vmix = 0.5 * v + 0.5 * v1
        x = x + attention(f"{p}.attn", h, vmix)
        x = x + lin(P, f"{p}.fc2", F.gelu(lin(P, f"{p}.fc1", ln(f"{p}.norm2", x))))
    torch.testing.assert_close(gm(tok), ln("norm", x))


# ---------------------------------------------------------------- ScaleNorm / FixNorm
def test_prenorm_scalenorm_and_fixnorm():
    """Nguyen & Salazar 2019: x + f(ScaleNorm(x)), ScaleNorm(x) = g x / ||x||, g_0 = sqrt(d);
    FixNorm(x) = g x / ||x|| with g fixed."""
    gm = build("    PreNorm(linear(8), ScaleNorm(8)) as blk\n    FixNorm(2.5)")
    assert gm.blk.norm.g.item() == pytest.approx(math.sqrt(8))
    P = randomize(gm, scale=0.5)
    g = P["blk.norm.g"]
    h = X + lin(P, "blk.f", g * X / X.norm(dim=-1, keepdim=True).clamp_min(1e-5))
    torch.testing.assert_close(gm(X), 2.5 * h / h.norm(dim=-1, keepdim=True))


# ---------------------------------------------------------------- RevNet
def test_revnet_coupling_and_its_inverse():
    """Gomez et al. 2017, eqs. 1-2: y1 = x1 + F(x2), y2 = x2 + G(y1); x2 = y2 - G(y1), x1 = y1 - F(x2)."""
    gm = build("    RevCoupling(conv(4, 3, padding=1), conv(4, 3, padding=1)) as blk",
               shape="[N, C=8, H=6, W=6]")
    P = randomize(gm, scale=0.5)
    x = torch.randn(2, 8, 6, 6)
    Fn = lambda h: F.conv2d(h, P["blk.F.weight"], P["blk.F.bias"], padding=1)  # noqa: E731
    Gn = lambda h: F.conv2d(h, P["blk.G.weight"], P["blk.G.bias"], padding=1)  # noqa: E731
    x1, x2 = x[:, :4], x[:, 4:]
    y1 = x1 + Fn(x2)
    y2 = x2 + Gn(y1)
    y = gm(x)
    torch.testing.assert_close(y, torch.cat([y1, y2], 1))
    r2 = y[:, 4:] - Gn(y[:, :4])
    r1 = y[:, :4] - Fn(r2)
    torch.testing.assert_close(torch.cat([r1, r2], 1), x, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- residual adapters
def test_residual_adapters():
    """Rebuffi et al. 2017: BN(y + alpha * y), y = conv3x3(x) (series);
    Rebuffi et al. 2018: BN(conv3x3(x) + alpha * x) (parallel); alpha a 1x1 filter bank."""
    gm = build("    SeriesAdapterConv(8) as a\n    ParallelAdapterConv(8) as b", shape="[N, C=8, H=6, W=6]")
    P = randomize(gm, scale=0.5)
    x = torch.randn(2, 8, 6, 6)

    def bn(name, h):
        return F.batch_norm(h, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                            P[f"{name}.bias"])

    y = F.conv2d(x, P["a.conv.weight"], padding=1)
    y = bn("a.bn", y + F.conv2d(y, P["a.adapter.weight"]))
    z = bn("b.bn", F.conv2d(y, P["b.conv.weight"], padding=1) + F.conv2d(y, P["b.adapter.weight"]))
    torch.testing.assert_close(gm(x), z)


# ---------------------------------------------------------------- neural ODE
def test_neural_ode_euler_and_rk4_share_one_f():
    """Chen et al. 2018: h(t1) from dh/dt = f(h), fixed steps dt = t1 / steps, one f throughout.
    Euler: h + dt f(h); RK4: h + dt/6 (k1 + 2 k2 + 2 k3 + k4)."""
    gm = build('    ODEBlock(linear(8), 4) as euler\n    ODEBlock(linear(8), 3, t1=0.6, method="rk4") as rk4')
    assert sum(p.numel() for p in gm.parameters()) == 2 * (8 * 8 + 8)  # one f per ODE block
    P = randomize(gm, scale=0.5)
    fe = lambda h: lin(P, "euler.f", h)  # noqa: E731
    fr = lambda h: lin(P, "rk4.step.F", h)  # noqa: E731
    h = X
    for _ in range(4):
        h = h + 0.25 * fe(h)
    dt = 0.2
    for _ in range(3):
        k1 = fr(h)
        k2 = fr(h + dt / 2 * k1)
        k3 = fr(h + dt / 2 * k2)
        k4 = fr(h + dt * k3)
        h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    calls = []  # blocks are modules: count the calls of the one f with hooks
    for name in ("euler.f", "rk4.step.F"):
        gm.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    torch.testing.assert_close(gm(X), h)
    assert calls.count("euler.f") == 4 and calls.count("rk4.step.F") == 12


def test_variants_export_to_onnx():
    """The variants' ops (learned scalars, orthogonal projection, l2 norm, broadcast matmul) lower to ONNX."""
    import onnxruntime as ort
    src = ("import variants\nnetwork n() {\n    input x: [N, L=5, D=8]\n"
           "    OrthogonalResidual(linear(8)) as orth\n    PreNorm(linear(8), ScaleNorm(8)) as pre\n"
           "    HyperExpand(2)\n    HyperConnection(linear(8), 2, dynamic=true) as hc\n    HyperReduce()\n"
           "    ODEBlock(linear(8), 2, method=\"rk4\") as ode\n    LaurelLR(linear(8), 2) as lr\n}\n")
    gm = resdsl.build(src, seed=0).eval()
    randomize(gm, scale=0.5)
    model = resdsl.to_onnx(src, weights=gm.state_dict())
    sess = ort.InferenceSession(model.SerializeToString())
    out = sess.run(None, {"x": X.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), gm(X).detach(), rtol=1e-4, atol=1e-5)
