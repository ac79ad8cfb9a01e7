"""Reading-list networks of issue 22 that share no theme (stdlib/ensem_nn.res,
temporal_jacobians.res, hytip.res, hiresnet.res) and the `quantize` op HyTIP needs. No pip
package implements these networks, so each is checked against a direct PyTorch transcription of
its paper's equations (as the `.res` file's header reads them) on a small configuration, written
here without resdsl and taking every parameter by name: outputs AND gradients equal, every
parameter randomised first, train and eval where BatchNorm makes them differ. Each network also
compiles to a standalone torch file and to ONNX, and both compute what the module tree computes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_file, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")


def _inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lambda: [torch.randn(*s, generator=g) for s in shapes]


TINY = {
    "ensem": ("ensem_nn.res", "EnsemNN", {"frames": 8, "classes": 5, "widths": [8, 16]}, _inputs((2, 8, 25, 3))),
    "trj": ("temporal_jacobians.res", "TemporalResidualJacobians",
            {"faces": 10, "feat": 4, "pose": 5, "frames": 3, "hidden": 8, "depth": 2, "dt": 0.5},
            _inputs((2, 10, 4), (2, 3, 5))),
    "hytip": ("hytip.res", "HyTIP", {"c": 8, "latent": 6}, _inputs((2, 3, 64, 64), (2, 3, 64, 64), (2, 2, 64, 64))),
    "hiresnet": ("hiresnet.res", "HiResNet", {"n": 1, "widths": [4, 8, 16], "classes": 3}, _inputs((2, 3, 32, 32))),
}


# HyTIP's plain convs (no normalisation) grow the values fast: smaller random weights keep its
# outputs near 1, where float32 rounding is far below the tolerances
SCALE = {"hytip": 0.1}


def tiny(key):
    f, net, params, inputs = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params)
    P = randomize(gm, scale=SCALE.get(key, 0.3))
    named = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in named) for k, v in P.items()}, inputs()


def outputs(y):
    return list(y) if isinstance(y, tuple) else [y]


def check(gm, P, xs, ref, train):
    """Outputs equal, then the gradients of every parameter for one random cotangent per output."""
    gm.train(train)
    ys = outputs(gm(*xs))
    wants = outputs(ref(P, *xs, train=train))
    assert len(ys) == len(wants)
    g = torch.Generator().manual_seed(7)
    loss_ours = loss_ref = 0
    for y, want in zip(ys, wants):
        torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
        r = torch.randn(y.shape, generator=g)
        loss_ours = loss_ours + (y * r).sum()
        loss_ref = loss_ref + (want * r).sum()
    loss_ours.backward()
    loss_ref.backward()
    for k, p in gm.named_parameters():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    return ys


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


def lin(P, name, x):
    return F.linear(x, P[f"{name}.weight"], P[f"{name}.bias"])


# ---------------------------------------------------------------- Ensem-NN (Xu et al. 2018)
NTU_PARTS = [[0, 1, 2, 3, 20], [4, 5, 6, 7, 21, 22], [8, 9, 10, 11, 23, 24], [12, 13, 14, 15], [16, 17, 18, 19]]


def res_block_1d(P, pre, h, stride, train):
    y = F.relu(bn(P, f"{pre}.bn1", F.conv1d(h, P[f"{pre}.conv1.weight"], stride=stride, padding=1), train))
    y = bn(P, f"{pre}.bn2", F.conv1d(y, P[f"{pre}.conv2.weight"], padding=1), train)
    if f"{pre}.downsample.0.weight" in P:
        h = bn(P, f"{pre}.downsample.1", F.conv1d(h, P[f"{pre}.downsample.0.weight"], stride=stride), train)
    return F.relu(y + h)


def base_net(P, pre, h, train, widths=(8, 16)):
    h = F.relu(bn(P, f"{pre}.stem_bn", F.conv1d(h, P[f"{pre}.stem.weight"], padding=1), train))
    for s in range(len(widths)):
        h = res_block_1d(P, f"{pre}.layer{s + 1}.0", h, 2 if s > 0 else 1, train)
    return h


def temporal(x):  # [N, T, J, 3] -> [N, J*3, T]: the joints' coordinates are the channels
    n, t, j, c = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, j * c, t)


def ensem_ref(P, x, train):
    n, t, j, c = x.shape
    # two-stream entirety net: over the frames, and over the joints (the frames' coordinates as channels)
    ft = base_net(P, "two_stream.temporal", temporal(x), train).mean(2)
    fs = base_net(P, "two_stream.spatial", x.permute(0, 1, 3, 2).reshape(n, t * c, j), train).mean(2)
    s1 = lin(P, "two_stream.fc", torch.cat([ft, fs], 1))
    # body-part net
    parts = [base_net(P, f"body_part.part{p}", temporal(x[:, :, idx]), train).mean(2) for p, idx in enumerate(NTU_PARTS)]
    s2 = lin(P, "body_part.fc", torch.cat(parts, 1))
    # attention net: a channel gate, then softmax attention over the frames
    h = base_net(P, "attention.base", temporal(x), train)
    gate = torch.sigmoid(lin(P, "attention.fc2", F.relu(lin(P, "attention.fc1", h.mean(2)))))
    h = h * gate[:, :, None]
    a = torch.softmax(F.conv1d(h, P["attention.frame.weight"], P["attention.frame.bias"]), dim=2)
    s3 = lin(P, "attention.fc", (h * a).sum(2))
    # frame-difference net
    s4 = lin(P, "frame_diff.fc", base_net(P, "frame_diff.base", temporal(x[:, 1:] - x[:, :-1]), train).mean(2))
    return sum(torch.softmax(s, 1) for s in (s1, s2, s3, s4)) / 4


@pytest.mark.parametrize("train", [True, False])
def test_ensem_nn_matches_its_equations(train):
    gm, P, xs = tiny("ensem")
    (y,) = check(gm, P, xs, ensem_ref, train)
    assert y.shape == (2, 5)
    torch.testing.assert_close(y.sum(1), torch.ones(2))  # the mean of four distributions


def test_ensem_nn_paper_configuration():
    g = resdsl.graph(os.path.join(STD, "ensem_nn.res"), "ensem_nn_ntu")
    names = g.param_names()
    assert tuple(names["two_stream.temporal.stem.weight"].shape) == (64, 75, 3)  # 25 joints x 3 coordinates
    assert tuple(names["two_stream.spatial.stem.weight"].shape) == (64, 96, 3)  # 32 frames x 3 coordinates
    assert tuple(names["body_part.part1.stem.weight"].shape) == (64, 18, 3)  # the left arm: 6 joints
    assert tuple(names["body_part.fc.weight"].shape) == (60, 5 * 128)
    assert g.num_params() == 1_122_705


# ---------------------------------------------------------------- Temporal Residual Jacobians
def face_mlp(P, pre, h, depth=2):
    for layer in range(depth):
        h = F.relu(lin(P, f"{pre}.layers.{layer}", h))
    return lin(P, f"{pre}.out", h)


def trj_ref(P, f, p, train, dt=0.5):
    spatial, integrated, j = [], [], None
    for t in range(p.shape[1]):
        pt = p[:, t, None, :].expand(-1, f.shape[1], -1)  # the pose code on every face
        js = face_mlp(P, "spatial", torch.cat([f, pt], -1))  # J^P_t = S([f_i, p_t])
        j = js if t == 0 else j + dt * face_mlp(P, "temporal", torch.cat([f, j, pt], -1))  # Euler step of dJ/dt
        spatial.append(js)
        integrated.append(j)
    return torch.stack(integrated, 1), torch.stack(spatial, 1)


def test_temporal_residual_jacobians_match_their_equations():
    gm, P, xs = tiny("trj")
    jac, spatial = check(gm, P, xs, trj_ref, False)
    assert jac.shape == spatial.shape == (2, 3, 10, 9)
    torch.testing.assert_close(jac[:, 0], spatial[:, 0])  # integration starts from the spatial network
    assert not torch.allclose(jac[:, 2], spatial[:, 2])  # and departs from it by the integrated residuals


def test_temporal_residual_jacobians_share_weights_across_frames():
    names = resdsl.graph(os.path.join(STD, "temporal_jacobians.res"), "trj_small").param_names()
    assert sorted({k.split(".")[0] for k in names}) == ["spatial", "temporal"]
    assert tuple(names["spatial.layers.0.weight"].shape) == (128, 16 + 24)
    assert tuple(names["temporal.layers.0.weight"].shape) == (128, 16 + 9 + 24)


# ---------------------------------------------------------------- HyTIP (one coding step)
def ste_round(y):
    """Rounding with the straight-through estimator: round forward, identity backward."""
    return y + (torch.round(y) - y).detach()


def hytip_ref(P, x, xhat_prev, h_prev, train):
    def conv(name, h, **kw):
        return F.conv2d(h, P[f"{name}.weight"], P[f"{name}.bias"], **kw)

    def deconv(name, h):
        return F.conv_transpose2d(h, P[f"{name}.weight"], P[f"{name}.bias"], stride=2, padding=1)

    def res(name, h):
        return h + conv(f"{name}.conv2", F.relu(conv(f"{name}.conv1", h, padding=1)), padding=1)

    ctx = res("context.res", F.relu(conv("context.conv", torch.cat([xhat_prev, h_prev], 1), padding=1)))
    xc = conv("predictor", ctx, padding=1)  # the temporal predictor
    m = torch.sigmoid(conv("mask", ctx, padding=1))  # MaskCRT's soft mask
    e = F.relu(conv("encoder.conv1", torch.cat([x - m * xc, ctx], 1), stride=2, padding=2))
    y = conv("encoder.conv2", res("encoder.res", e), stride=2, padding=2)
    yhat = ste_round(y)
    d = F.relu(deconv("decoder.deconv2", res("decoder.res", F.relu(deconv("decoder.deconv1", yhat)))))
    fused = F.relu(conv("fusion", torch.cat([d, ctx], 1), padding=1))
    xhat = m * xc + conv("reconstruction", fused, padding=1)
    return xhat, conv("buffer", fused, padding=1), yhat


def test_hytip_step_matches_its_equations():
    gm, P, xs = tiny("hytip")
    xhat, h, yhat = check(gm, P, xs, hytip_ref, False)
    assert xhat.shape == (2, 3, 64, 64) and h.shape == (2, 2, 64, 64) and yhat.shape == (2, 6, 16, 16)
    assert torch.equal(yhat, yhat.round()) and len(yhat.unique()) > 2  # integers, not all one value
    # the straight-through gradient reaches the encoder
    assert gm.get_parameter("encoder.conv1.weight").grad.abs().sum() > 0


def test_hytip_buffers_feed_the_next_step():
    """The outputs (decoded frame, latent buffer) are the next step's inputs: two steps run."""
    gm, _, (x, xhat, h) = tiny("hytip")
    gm.eval()
    with torch.no_grad():
        xhat1, h1, _ = gm(x, xhat, h)
        xhat2, h2, _ = gm(x, xhat1, h1)
    assert xhat2.shape == xhat.shape and h2.shape == h.shape
    assert not torch.equal(xhat2, xhat1)


# ---------------------------------------------------------------- the quantize op
QUANTIZE = "network q(mode: str = \"straight_through\") {\n    input x: [N, D=6]\n    x -> quantize(mode=mode)\n}\n"


@pytest.mark.parametrize("mode,grad", [("straight_through", 1.0), ("round", 0.0)])
def test_quantize_rounds_half_to_even_and_its_gradient(mode, grad):
    gm = resdsl.build(QUANTIZE, mode=mode)
    x = torch.tensor([[-2.5, -1.5, -0.4, 0.5, 1.5, 2.6]], requires_grad=True)
    y = gm(x)
    assert y.tolist() == [[-2.0, -2.0, 0.0, 0.0, 2.0, 3.0]]  # half to even, as torch.round and ONNX Round
    (y * torch.arange(1.0, 7.0)).sum().backward()
    torch.testing.assert_close(x.grad, grad * torch.arange(1.0, 7.0)[None])


def test_quantize_refuses_an_unknown_mode():
    with pytest.raises(resdsl.ResdslError, match="mode"):
        resdsl.graph(QUANTIZE, mode="noise")


@pytest.mark.parametrize("mode", ["straight_through", "round"])
def test_quantize_in_the_torch_file_and_onnx(mode, tmp_path):
    import onnxruntime as ort
    x = torch.tensor([[-2.5, -1.5, -0.4, 0.5, 1.5, 2.6]], requires_grad=True)
    path = tmp_path / "q_gen.py"
    path.write_text(resdsl.to_python(QUANTIZE, mode=mode))
    gen = import_file(path, f"q_gen_{mode}").q()
    y = gen(x)
    y.sum().backward()
    assert y.tolist() == [[-2.0, -2.0, 0.0, 0.0, 2.0, 3.0]]
    assert x.grad.tolist() == [[1.0 if mode == "straight_through" else 0.0] * 6]
    sess = ort.InferenceSession(resdsl.to_onnx(QUANTIZE, mode=mode).SerializeToString())
    got = sess.run(None, {sess.get_inputs()[0].name: x.detach().numpy()})[0]
    assert got.tolist() == y.tolist()


# ---------------------------------------------------------------- HiResNet (López & Triesch 2025)
def hiresnet_ref(P, x, train, widths=(4, 8, 16)):
    def conv_bn(conv, norm, h, stride=1, padding=1):
        return bn(P, norm, F.conv2d(h, P[f"{conv}.weight"], stride=stride, padding=padding), train)

    h = F.relu(conv_bn("conv1", "bn1", x))
    levels = [h]  # h_0: the stem
    for s in range(len(widths)):
        h, pre, stride = levels[s], f"layer{s + 1}.0", 2 if s > 0 else 1
        y = conv_bn(f"{pre}.conv2", f"{pre}.bn2", F.relu(conv_bn(f"{pre}.conv1", f"{pre}.bn1", h, stride)))
        if f"{pre}.downsample.0.weight" in P:
            h = conv_bn(f"{pre}.downsample.0", f"{pre}.downsample.1", h, stride, 0)
        h = F.relu(y + h)
        # h_l = stage_l(h_{l-1}) + sum_{k < l-1} P_{k,l}(h_k): pool to h_l's size, 1x1 conv, BN
        for k in range(s):
            low = F.avg_pool2d(levels[k], levels[k].shape[-1] // h.shape[-1]) \
                if levels[k].shape[-1] != h.shape[-1] else levels[k]
            h = h + conv_bn(f"hier{k}_{s + 1}.conv", f"hier{k}_{s + 1}.bn", low, padding=0)
        levels.append(h)
    return lin(P, "fc", h.mean((2, 3)))


@pytest.mark.parametrize("train", [True, False])
def test_hiresnet_matches_its_equations(train):
    gm, P, xs = tiny("hiresnet")
    (y,) = check(gm, P, xs, hiresnet_ref, train)
    assert y.shape == (2, 3)


def test_hiresnet_long_range_residuals():
    names = resdsl.graph(os.path.join(STD, "hiresnet.res"), "hiresnet20_cifar").param_names()
    hier = sorted({k.split(".")[0] for k in names if k.startswith("hier")})
    assert hier == ["hier0_2", "hier0_3", "hier1_3"]  # every level to every level above the next
    assert tuple(names["hier0_3.conv.weight"].shape) == (64, 16, 1, 1)
    assert sum(1 for k in names if k.startswith("layer") and k.endswith("conv1.weight")) == 9  # ResNet-20's 9 blocks


# ---------------------------------------------------------------- every target
@pytest.mark.parametrize("key", sorted(TINY))
def test_generated_torch_file_computes_the_same(key, tmp_path):
    f, net, params, inputs = TINY[key]
    path = tmp_path / f"{key}_gen.py"
    path.write_text(resdsl.to_python(os.path.join(STD, f), network=net, **params))
    mod = import_file(path, f"{key}_gen")
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    gen = fn(seed=3).eval()
    ref = resdsl.build(os.path.join(STD, f), network=net, seed=3, **params).eval()
    assert list(gen.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(gen.state_dict()[k], v), k
    xs = inputs()
    with torch.no_grad():
        for a, b in zip(outputs(gen(*xs)), outputs(ref(*xs))):
            assert torch.equal(a, b)


@pytest.mark.parametrize("key", sorted(TINY))
def test_onnx_computes_the_same(key):
    import onnxruntime as ort
    f, net, params, inputs = TINY[key]
    path = os.path.join(STD, f)
    gm = resdsl.build(path, network=net, seed=0, **params)
    state = randomize(gm, scale=SCALE.get(key, 0.3))
    gm.eval()
    model = resdsl.to_onnx(path, network=net, weights=state, **params)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = inputs()
    got = sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)})
    with torch.no_grad():
        wants = outputs(gm(*xs))
    assert len(got) == len(wants)
    for g, w in zip(got, wants):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)
