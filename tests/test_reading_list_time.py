"""The reading-list networks that carry state across time steps (stdlib/ems_resnet.res,
girnet.res, deep_residual_esn.res, residual_reservoir_memory_network.res). No pip package
implements these networks (snntorch and spikingjelly are not dependencies; the reservoirs'
authors publish no package), so each is checked against a direct PyTorch transcription of its
paper's equations on a small configuration, written here without resdsl: outputs AND gradients
equal, every parameter randomised first and read by name. The spiking neuron is transcribed as
EMS-YOLO writes it (a torch.autograd.Function with the rectangular surrogate), not with the
module's straight-through form. The reservoirs' frozen weights: buffers, not parameters, no
gradient, the spectral radius and orthogonality they are drawn with. Each network also compiles
to a standalone torch file and to ONNX, and both compute what the module tree computes."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")
G = torch.Generator().manual_seed(0)

TINY = {
    "ems": ("ems_resnet.res", "EMSResNet", {"T": 3, "widths": [8, 16], "stem": 4, "anchors": 1, "classes": 2},
            lambda: torch.randn(2, 3, 32, 32, generator=G) * 2),
    "girnet": ("girnet.res", "GIRNet", {"nf": 4, "blocks": 1}, lambda: torch.randn(2, 2, 3, 8, 8, generator=G)),
    "esn": ("deep_residual_esn.res", "DeepResESN", {"layers": 2, "units": 6, "classes": 3},
            lambda: torch.randn(2, 50, 1, generator=G)),
    "rmn": ("residual_reservoir_memory_network.res", "ResRMN", {"memory": 5, "units": 6, "classes": 3},
            lambda: torch.randn(2, 50, 1, generator=G)),
}


def tiny(key):
    f, net, params, inputs = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params)
    P = randomize(gm, scale=0.3)
    named = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in named) for k, v in P.items()}, inputs()


def check(gm, P, x, ref, train):
    gm.train(train)
    y = gm(x)
    want = ref(P, x, train)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    (y * r).sum().backward()
    (want * r).sum().backward()
    named = dict(gm.named_parameters())
    for k, p in named.items():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    return y


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


# ---------------------------------------------------------------- EMS-ResNet
class ActFun(torch.autograd.Function):
    """EMS-YOLO's spike: u > 0.5 forward; backward the rectangle (|u - 0.5| < lens) / (2 lens),
    lens = 0.5."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > 0.5).float()

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ((u - 0.5).abs() < 0.5).float()


def mem_update(x, T):
    """EMS-YOLO's mem_update over [T, N, ..]: mem = mem_old * decay * (1 - spike_old) + x_t."""
    xs = x.reshape(T, -1, *x.shape[1:])
    mem = spike = None
    out = []
    for t in range(T):
        mem = xs[t] if t == 0 else mem * 0.25 * (1 - spike) + xs[t]
        spike = ActFun.apply(mem)
        out.append(spike)
    return torch.cat(out, 0)


def ems_ref(P, x, train, T=3, widths=(8, 16)):
    def conv_bn(pre, h, stride=1, k=3):
        return bn(P, pre.replace("conv", "bn"), F.conv2d(h, P[pre + ".weight"], stride=stride, padding=k // 2), train)

    s = torch.cat([x] * T, 0)
    s = conv_bn("conv1", s, 2)
    for i, c in enumerate(widths):
        a, b = f"layer{i + 1}.0.", f"layer{i + 1}.1."
        y = conv_bn(a + "conv2", mem_update(conv_bn(a + "conv1", mem_update(s, T), 2), T))
        p = F.max_pool2d(s, 2)
        s = torch.cat([p, conv_bn(a + "shortcut_conv", mem_update(p, T), k=1)], 1) + y
        s = s + conv_bn(b + "conv2", mem_update(conv_bn(b + "conv1", mem_update(s, T)), T))
    y = F.conv2d(mem_update(s, T), P["head.weight"], P["head.bias"])
    return y.reshape(T, -1, *y.shape[1:]).mean(0)


@pytest.mark.parametrize("train", [True, False])
def test_ems_resnet_matches_its_equations(train):
    gm, P, x = tiny("ems")
    y = check(gm, P, x, ems_ref, train)
    assert y.shape == (2, 7, 4, 4)


def test_lif_spikes_are_binary_and_the_surrogate_is_the_rectangle():
    src = "network n() {\n    input x: [N, D=6]\n    lif(2, surrogate=\"rect\")\n}\n"
    gm = resdsl.build(src, seed=0)
    x = torch.linspace(-0.5, 1.5, 24).reshape(4, 6).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    y = gm(x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    want = mem_update(x2, 2)
    torch.testing.assert_close(y, want)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    (y * r).sum().backward()
    (want * r).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert x.grad.abs().sum() > 0


# ---------------------------------------------------------------- GIRNet
def convlstm_ref(P, name, x, T, c0=None):
    w, b = P[name + ".weight"], P[name + ".bias"]
    hid = w.shape[0] // 4
    xs = x.reshape(T, -1, *x.shape[1:])
    h = torch.zeros(xs.shape[1], hid, *xs.shape[3:])
    c = torch.zeros_like(h) if c0 is None else c0
    out = []
    for t in range(T):
        gates = F.conv2d(torch.cat([xs[t], h], 1), w, b, padding=w.shape[-1] // 2)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.cat(out, 0)


def girnet_ref(P, x, train):
    def conv(name, h):
        return F.conv2d(h, P[name + ".weight"], P[name + ".bias"], padding=1)

    n = x.shape[0]
    f = F.leaky_relu(conv("conv_first", x.transpose(0, 1).reshape(-1, *x.shape[2:])), 0.1)
    f = f + conv("features.0.conv2", F.relu(conv("features.0.conv1", f)))
    f0, f1 = f[:n], f[n:]
    mid = F.leaky_relu(conv("interpolate", torch.cat([f0, f1], 1)), 0.1)
    seq = torch.cat([f0, mid, f1], 0)
    g = convlstm_ref(P, "lstm1", seq, 3)[2 * n:]                    # the last step's hidden state
    seq = seq + convlstm_ref(P, "lstm2", seq, 3, c0=g)
    y = F.leaky_relu(F.pixel_shuffle(conv("upconv", seq), 2), 0.1)
    y = conv("conv_last", y)
    return y.reshape(3, n, *y.shape[1:]).transpose(0, 1)


def test_girnet_matches_its_equations():
    gm, P, x = tiny("girnet")
    y = check(gm, P, x, girnet_ref, True)
    assert y.shape == (2, 3, 3, 16, 16)


# ---------------------------------------------------------------- reservoirs
def resesn_ref(P, name, x, alpha, beta, temporal="orthogonal", act=torch.tanh, rec=True, bias=True):
    """ResESN: h(t) = alpha O h(t-1) + beta act(W_in x(t) + W h(t-1) + b)."""
    u = P[name + ".weight_in"].shape[0]
    h = torch.zeros(x.shape[0], u)
    out = []
    for t in range(x.shape[1]):
        pre = x[:, t] @ P[name + ".weight_in"].T
        if rec:
            pre = pre + h @ P[name + ".weight_rec"].T
        if bias:
            pre = pre + P[name + ".bias"]
        carried = h if temporal == "identity" else h @ P[name + ".residual_map"].T
        h = alpha * carried + beta * act(pre)
        out.append(h)
    return torch.stack(out, 1)


def esn_ref(P, x, train, layers=2):
    h, lasts = x, []
    for i in range(layers):
        h = resesn_ref(P, f"reservoirs.{i}", h, 0.9, 0.1)
        lasts.append(h[:, -1])
    return F.linear(torch.cat(lasts, 1), P["readout.weight"], P["readout.bias"])


def rmn_ref(P, x, train):
    m = resesn_ref(P, "memory", x, 1.0, 1.0, act=lambda v: v, rec=False, bias=False)   # m(t) = C m(t-1) + V x(t)
    h = resesn_ref(P, "reservoir", torch.cat([x, m], 2), 0.9, 0.1)
    return F.linear(h[:, -1], P["readout.weight"], P["readout.bias"])


@pytest.mark.parametrize("key,ref", [("esn", esn_ref), ("rmn", rmn_ref)])
def test_reservoir_networks_match_their_equations(key, ref):
    gm, P, x = tiny(key)
    check(gm, P, x, ref, True)
    assert [k for k, _ in gm.named_parameters()] == ["readout.weight", "readout.bias"]


def test_frozen_reservoir_weights():
    """Buffers: in the state_dict, not in parameters(), no gradient, untouched by an optimizer;
    drawn with the spectral radius asked for and an orthogonal (or cyclic) temporal map."""
    gm = resdsl.build(os.path.join(STD, "residual_reservoir_memory_network.res"),
                      network="residual_reservoir_memory_network", seed=0)
    buffers = dict(gm.named_buffers())
    assert {"memory.weight_in", "memory.residual_map", "reservoir.weight_in", "reservoir.weight_rec",
            "reservoir.bias", "reservoir.residual_map"} <= set(buffers)
    assert set(buffers) <= set(gm.state_dict())
    assert not any(k.startswith(("memory.", "reservoir.")) for k, _ in gm.named_parameters())
    rho = torch.linalg.eigvals(buffers["reservoir.weight_rec"].double()).abs().max()
    assert abs(rho.item() - 0.9) < 1e-5
    eye = torch.eye(100)
    for k in ("memory.residual_map", "reservoir.residual_map"):
        o = buffers[k]
        torch.testing.assert_close(o @ o.T, eye, atol=1e-5, rtol=0)
    c = buffers["memory.residual_map"]
    assert torch.equal(c, torch.roll(eye, 1, 0))  # the cyclic shift: a ring
    before = {k: v.clone() for k, v in buffers.items()}
    opt = torch.optim.SGD(gm.parameters(), lr=0.1)
    x = torch.randn(3, 50, 1, requires_grad=True)
    gm(x).square().sum().backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in gm.named_buffers())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_reservoir_weights_are_reproducible_and_differ_by_seed():
    path = os.path.join(STD, "deep_residual_esn.res")
    a = resdsl.build(path, network="deep_residual_esn", seed=3).state_dict()
    b = resdsl.build(path, network="deep_residual_esn", seed=3).state_dict()
    c = resdsl.build(path, network="deep_residual_esn", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["reservoirs.0.weight_rec"], c["reservoirs.0.weight_rec"])


# ---------------------------------------------------------------- the torch file and ONNX
@pytest.mark.parametrize("key", sorted(TINY))
def test_torch_file_and_onnx_compute_what_the_tree_computes(key, tmp_path):
    import onnxruntime as ort
    f, net, params, inputs = TINY[key]
    path = os.path.join(STD, f)
    declared = {"ems": (2, 3, 64, 64), "girnet": (2, 2, 3, 32, 32)}  # ONNX inputs have the declared size
    x = torch.randn(*declared[key], generator=G) * 2 if key in declared else inputs()
    gm = resdsl.build(path, network=net, seed=0, **params).eval()
    y = gm(x).detach()
    code = resdsl.to_python(path, network=net, **params)
    out = tmp_path / "gen.py"
    out.write_text(code)
    spec = importlib.util.spec_from_file_location("gen_" + key, out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    m = fn(seed=0).eval()
    assert m.state_dict().keys() == gm.state_dict().keys()
    torch.testing.assert_close(m(x), y, rtol=0, atol=0)
    model = resdsl.to_onnx(path, network=net, seed=0, **params)
    s = ort.InferenceSession(model.SerializeToString())
    got = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, y.numpy(), rtol=1e-4, atol=1e-5)
