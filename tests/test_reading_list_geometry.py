"""The reading-list networks built on stdlib/geometry.res (fdgatii.res, cv_musenet.res,
residual_kan.res, poincare_resnet.res): no pip package implements these papers' networks, so
each is checked against a direct PyTorch transcription of its paper's equations on a small
configuration, written here independently of resdsl (CV-MuSeNet's with torch's complex
tensors, the Poincaré ball's with torch.atanh and geoopt's formulas): outputs AND gradients
equal, with every parameter randomised first (conftest.randomize) and read by name from the
built module. Each network also compiles to a standalone torch file and to ONNX, and both
compute what the module tree computes."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, randomize

import resdsl
from conftest import assert_onnx_equals_build, assert_torch_file_equals_build

STD = os.path.join(ROOT, "stdlib")


def graph(n=2, v=7, f=5, seed=0):
    """n random graphs of v nodes: features [n, v, f], D^-1/2 (A + I) D^-1/2 [n, v, v]."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, v, v, generator=g) < 0.35).float()
    a = ((a + a.transpose(1, 2) + torch.eye(v)) > 0).float()   # symmetric, with self loops
    d = a.sum(2).rsqrt()
    return torch.randn(n, v, f, generator=g), d[:, :, None] * a * d[:, None, :]


G = torch.Generator().manual_seed(0)
TINY = {
    "fdgatii": ("fdgatii.res", "FDGATII", {"features": 5, "hidden": 6, "layers": 3, "classes": 3},
                lambda: graph()),
    "cv_musenet": ("cv_musenet.res", "CVMuSeNet", {"width": 3, "blocks": 2, "bins": 16, "classes": 3},
                   lambda: (torch.randn(2, 2, 16, generator=G),)),
    "residual_kan": ("residual_kan.res", "RKANResNet", {"widths": [4, 6], "degree": 3, "classes": 3},
                     lambda: (torch.randn(2, 3, 32, 32, generator=G),)),
    "poincare_resnet": ("poincare_resnet.res", "PoincareResNet", {"widths": [4, 6], "curv": 0.7, "classes": 3},
                        lambda: (torch.randn(2, 3, 32, 32, generator=G),)),
}


def tiny(key, seed=0):
    f, net, params, inputs = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=seed, **params)
    P = randomize(gm, scale=0.3)
    params = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in params) for k, v in P.items()}, inputs()


def check_outputs_and_grads(gm, P, xs, ref, train):
    gm.train(train)
    y = gm(*xs)
    want = ref(P, *xs, train=train)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    (y * r).sum().backward()
    (want * r).sum().backward()
    named = dict(gm.named_parameters())
    for k, p in named.items():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


# ---------------------------------------------------------------- FDGATII
def fdgatii_ref(P, x, adj, train, layers=3, alpha=0.1, lam=0.5):
    h0 = F.relu(F.linear(x, P["fcs.0.weight"], P["fcs.0.bias"]))
    h = h0
    for i in range(layers):
        p = f"convs.{i}"
        beta = math.log(lam / (i + 1) + 1)
        s, t = h @ P[f"{p}.attn.src.weight"].T, h @ P[f"{p}.attn.dst.weight"].T
        e = (F.leaky_relu(s[:, :, None, :] + t[:, None, :, :], 0.2) @ P[f"{p}.attn.att.weight"].T)[..., 0]
        att = torch.softmax(e.masked_fill(adj == 0, float("-inf")), dim=-1)
        support = (1 - alpha) * (att @ h) + alpha * h0                        # initial residual
        h = F.relu((1 - beta) * support + beta * support @ P[f"{p}.mapping.weight"].T)  # identity mapping
    return F.linear(h, P["fcs.1.weight"], P["fcs.1.bias"])


def test_fdgatii_matches_its_equations():
    gm, P, xs = tiny("fdgatii")
    check_outputs_and_grads(gm, P, xs, fdgatii_ref, train=False)


def test_fdgatii_attends_only_along_edges():
    """Changing a node that is no neighbour of node 0 (nor a neighbour's neighbour ...) leaves
    node 0's output alone; with layers = 1, only its direct neighbours matter."""
    f, net, params, _ = TINY["fdgatii"]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=1, **{**params, "layers": 1}).eval()
    x, adj = graph()
    far = next(j for j in range(adj.shape[1]) if adj[0, 0, j] == 0)
    x2 = x.clone()
    x2[0, far] += 5.0
    with torch.no_grad():
        a, b = gm(x, adj), gm(x2, adj)
    torch.testing.assert_close(a[0, 0], b[0, 0])
    torch.testing.assert_close(a[1], b[1])                    # the other graph of the batch
    assert not torch.allclose(a[0, far], b[0, far])


# ---------------------------------------------------------------- CV-MuSeNet
def cconv(z, P, name, padding):
    w = torch.complex(P[f"{name}.wr.weight"], P[f"{name}.wi.weight"])
    return F.conv1d(z, w, padding=padding)


def crelu(z):
    return torch.complex(F.relu(z.real), F.relu(z.imag))


def cv_musenet_ref(P, x, train, blocks=2):
    z = torch.complex(x[:, :1], x[:, 1:])                    # one complex channel
    z = crelu(cconv(z, P, "stem", 3))
    for i in range(blocks):
        y = crelu(cconv(z, P, f"blocks.{i}.conv1", 1))
        z = crelu(z + cconv(y, P, f"blocks.{i}.conv2", 1))
    return F.conv1d(torch.cat([z.real, z.imag], 1), P["head.weight"], P["head.bias"])


def test_cv_musenet_matches_complex_tensors():
    gm, P, xs = tiny("cv_musenet")
    check_outputs_and_grads(gm, P, xs, cv_musenet_ref, train=False)


# ---------------------------------------------------------------- Residual KAN
def cheby_kan(P, name, x, stride, degree=3):
    u = torch.tanh(x)
    ts = [torch.ones_like(u), u]
    for _ in range(2, degree + 1):
        ts.append(2 * u * ts[-1] - ts[-2])
    return (F.conv2d(F.silu(x), P[f"{name}.base.weight"], stride=stride, padding=1)
            + F.conv2d(torch.cat(ts, 1), P[f"{name}.spline.weight"], stride=stride, padding=1))


def rkan_ref(P, x, train, widths=(4, 6)):
    h = F.relu(bn(P, "bn1", F.conv2d(x, P["conv1.weight"], padding=1), train))
    for i, c in enumerate(widths):
        s, p = (1 if i == 0 else 2), f"stages.{i}"
        b = f"{p}.block"
        y = F.relu(bn(P, f"{b}.bn1", F.conv2d(h, P[f"{b}.conv1.weight"], stride=s, padding=1), train))
        y = bn(P, f"{b}.bn2", F.conv2d(y, P[f"{b}.conv2.weight"], padding=1), train)
        short = h if f"{b}.downsample.0.weight" not in P else \
            bn(P, f"{b}.downsample.1", F.conv2d(h, P[f"{b}.downsample.0.weight"], stride=s), train)
        y = F.relu(y + short)
        h = y + bn(P, f"{p}.kan_bn", cheby_kan(P, f"{p}.kan", h, s), train)
    return F.linear(h.mean((2, 3)), P["fc.weight"], P["fc.bias"])


@pytest.mark.parametrize("train", [False, True])
def test_residual_kan_matches_its_equations(train):
    gm, P, xs = tiny("residual_kan")
    check_outputs_and_grads(gm, P, xs, rkan_ref, train=train)


# ---------------------------------------------------------------- Poincaré ResNet
def _norm(x):
    return x.norm(dim=1, keepdim=True).clamp_min(1e-15)


def expmap0(v, c):
    sc = c ** 0.5
    return torch.tanh(sc * _norm(v)) * v / (sc * _norm(v))


def logmap0(y, c):
    sc = c ** 0.5
    return torch.atanh((sc * _norm(y)).clamp_max(1 - 1e-5)) * y / (sc * _norm(y))


def mobius_add(x, y, c):
    xy, x2, y2 = (x * y).sum(1, keepdim=True), (x * x).sum(1, keepdim=True), (y * y).sum(1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return num / (1 + 2 * c * xy + c ** 2 * x2 * y2).clamp_min(1e-15)


def project(x, c):
    r = (1 - 4e-3) / c ** 0.5
    n = _norm(x)
    return torch.where(n > r, x / n * r, x)


def poincare_ref(P, x, train, widths=(4, 6), c=0.7):
    h = project(expmap0(F.conv2d(x, P["conv1.weight"], padding=1), c), c)
    for i, w in enumerate(widths):
        s, p = (1 if i == 0 else 2), f"stages.{i}"
        t = logmap0(h, c)
        f = F.relu(bn(P, f"{p}.bn1", F.conv2d(t, P[f"{p}.conv1.weight"], stride=s, padding=1), train))
        f = expmap0(bn(P, f"{p}.bn2", F.conv2d(f, P[f"{p}.conv2.weight"], padding=1), train), c)
        if f"{p}.downsample.0.weight" in P:
            skip = expmap0(bn(P, f"{p}.downsample.1", F.conv2d(t, P[f"{p}.downsample.0.weight"], stride=s), train), c)
        else:
            skip = h
        h = project(mobius_add(skip, f, c), c)
    return F.linear(logmap0(h, c).mean((2, 3)), P["fc.weight"], P["fc.bias"])


@pytest.mark.parametrize("train", [False, True])
def test_poincare_resnet_matches_its_equations(train):
    gm, P, xs = tiny("poincare_resnet")
    check_outputs_and_grads(gm, P, xs, poincare_ref, train=train)


def test_poincare_resnet_features_stay_in_the_ball():
    f, net, params, inputs = TINY["poincare_resnet"]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params).eval()
    seen = []
    for k, m in gm.named_modules():
        if k.endswith(".proj"):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        gm(inputs()[0] * 10)
    assert len(seen) == 2
    for out in seen:
        assert (out.norm(dim=1) < 1 / 0.7 ** 0.5).all()


# ---------------------------------------------------------------- every target
@pytest.mark.parametrize("key", sorted(TINY))
def test_generated_torch_file_computes_the_same(key, tmp_path):
    f, net, params, inputs = TINY[key]
    assert_torch_file_equals_build(os.path.join(STD, f), net, params, inputs(), tmp_path, key)


@pytest.mark.parametrize("key", sorted(TINY))
def test_onnx_computes_the_same(key):
    f, net, params, inputs = TINY[key]
    assert_onnx_equals_build(os.path.join(STD, f), net, params, inputs())
