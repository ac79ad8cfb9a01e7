"""Reading-list image networks (issue 22): ML-SIM (stdlib/ml_sim.res), MixNet (mixnet.res),
EDNet (ednet.res) and AutoLUT (autolut.res). No pip package implements any of them, so each is
checked against a direct PyTorch transcription of its paper's equations on a small
configuration, written here without resdsl (RCAN's blocks; dilated pre-activation residual
units and PSPNet's pyramid pooling; correlation and concatenation volumes, warping with
torch's grid_sample; MuLUT's unfold-sample-rotate-quantize loop with torch.rot90, replicate
padding and F.unfold): outputs AND gradients equal, every parameter randomised first and read
by name, train and eval where they differ (batch norm). Each network also compiles to a
standalone torch file and to ONNX, and both compute what the module tree computes. AutoLUT's
rounding is `quantize` (tested with HyTIP's in tests/test_reading_list_misc.py)."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_file, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")


def inputs(key, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    shapes = TINY[key][3]
    xs = [torch.randn(*s, generator=g, dtype=dtype) for s in shapes]
    if key == "autolut":  # images in [0, 1]
        xs = [x.abs().clamp(max=1.0) for x in xs]
    return xs


TINY = {
    "ml_sim": ("ml_sim.res", "MLSIM", {"groups": 2, "blocks": 2, "c": 16, "reduction": 4}, [(2, 9, 12, 12)]),
    "mixnet_v1": ("mixnet.res", "MixNet", {"version": 1, "c": 8, "dilations": [1, 2], "bins": [1, 2, 4],
                                           "ppm": 4, "size": 16}, [(2, 3, 16, 16)]),
    "mixnet_v2": ("mixnet.res", "MixNet", {"version": 2, "c": 8, "dilations": [1, 2], "bins": [1, 2, 4],
                                           "ppm": 4, "size": 16}, [(2, 3, 16, 16)]),
    "mixnet_v3": ("mixnet.res", "MixNet", {"version": 3, "c": 8, "dilations": [1, 2], "bins": [1, 2, 4],
                                           "ppm": 4, "size": 16}, [(2, 3, 16, 16)]),
    "ednet": ("ednet.res", "EDNet", {"c": 8, "max_disp": 12, "squeeze": 4, "redir": 8, "agg": 8},
              [(2, 3, 32, 32), (2, 3, 32, 32)]),
    "autolut": ("autolut.res", "AutoLUT", {"stages": 2, "samplers": 2, "k": 3, "nf": 8, "scale": 2, "size": 8},
                [(2, 1, 8, 8)]),
}


def tiny(key, dtype=torch.float32):
    f, net, params, _ = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params).to(dtype)
    P = randomize(gm, scale=0.3)
    named = dict(gm.named_parameters())
    return gm, {k: v.clone().to(dtype).requires_grad_(k in named) for k, v in P.items()}, inputs(key, dtype)


def check(gm, P, xs, ref, train, rtol=1e-4, atol=1e-5):
    """Outputs equal, and the gradients of every parameter for one random cotangent."""
    gm.train(train)
    y = gm(*xs)
    want = ref(P, *xs, train=train)
    torch.testing.assert_close(y, want, rtol=rtol, atol=atol)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=y.dtype)
    (y * r).sum().backward()
    (want * r).sum().backward()
    for k, p in gm.named_parameters():
        assert P[k].grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")
    return y


def conv(P, name, x, bias=True, **kw):
    return F.conv2d(x, P[name + ".weight"], P[name + ".bias"] if bias else None, **kw)


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


# ---------------------------------------------------------------- ML-SIM (RCAN over 9 SIM frames)
def ml_sim_ref(P, x, train, groups=2, blocks=2):
    """RCAN: F_0 = head(x); RG_g(F) = F + conv(RCAB_n(...RCAB_1(F))); RCAB(F) = F + CA(conv(relu(conv(F))));
    CA(X) = X * sigmoid(W_U relu(W_D avgpool(X))); out = tail(F_0 + conv(RG_G(...RG_1(F_0))))."""
    def c3(name, h):
        return conv(P, name, h, padding=1)

    f0 = c3("head.0", x)
    f = f0
    for g in range(groups):
        gin = f
        for b in range(blocks):
            p = f"body.{g}.body.{b}.body."
            r = c3(p + "2", F.relu(c3(p + "0", f)))
            z = F.relu(conv(P, p + "3.conv_du.0", r.mean((2, 3), keepdim=True)))
            s = torch.sigmoid(conv(P, p + "3.conv_du.2", z))
            f = f + r * s
        f = gin + c3(f"body.{g}.body.{blocks}", f)
    f = f0 + c3(f"body.{groups}", f)
    return c3("tail.0", f)


def test_ml_sim_matches_its_equations():
    gm, P, xs = tiny("ml_sim")
    y = check(gm, P, xs, ml_sim_ref, True)
    assert y.shape == (2, 1, 12, 12)


def test_ml_sim_configuration():
    """The authors' training command: 9 frames in, 1 out, 2 groups of 5 RCABs, 48 features."""
    g = resdsl.graph(os.path.join(STD, "ml_sim.res"), "ml_sim")
    shapes = {k: tuple(s.shape) for k, s in g.param_names().items()}
    assert shapes["head.0.weight"] == (48, 9, 3, 3)
    assert shapes["body.1.body.4.body.3.conv_du.0.weight"] == (3, 48, 1, 1)
    assert shapes["body.1.body.5.weight"] == (48, 48, 3, 3) and shapes["body.2.weight"] == (48, 48, 3, 3)
    assert shapes["tail.0.weight"] == (1, 48, 3, 3)
    assert "body.2.body.0.body.0.weight" not in shapes


# ---------------------------------------------------------------- MixNet
def mixnet_ref(P, x, train, version, dilations=(1, 2), bins=(1, 2, 4), size=16):
    def path(pre, h):
        h = conv(P, pre + "stem", h, padding=1)
        scales = []
        for i, d in enumerate(dilations):
            u = f"{pre}units.{i}."
            r = conv(P, u + "conv1", F.relu(bn(P, u + "bn1", h, train)), padding=d, dilation=d)
            r = conv(P, u + "conv2", F.relu(bn(P, u + "bn2", r, train)), padding=d, dilation=d)
            h = h + r
            scales.append(h)
        return conv(P, pre + "fuse", F.relu(bn(P, pre + "bn", torch.cat(scales, 1), train)))

    paths = []
    if version != 1:
        paths += [path(f"modality.{m}.", x[:, m:m + 1]) for m in range(x.shape[1])]
    if version != 2:
        paths.append(path("stacked.", x))
    f = paths[0] if len(paths) == 1 else F.relu(bn(P, "mix_bn", conv(P, "mix", torch.cat(paths, 1)), train))
    levels = [f]
    for i, b in enumerate(bins):  # PSPNet's pyramid pooling
        p = F.adaptive_avg_pool2d(f, b)
        p = F.relu(bn(P, f"ppm.stages.{i}.bn", F.conv2d(p, P[f"ppm.stages.{i}.conv.weight"]), train))
        levels.append(F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False))
    return conv(P, "classifier", torch.cat(levels, 1))


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
def test_mixnet_matches_its_equations(version, train):
    gm, P, xs = tiny(f"mixnet_v{version}")
    y = check(gm, P, xs, lambda P, x, train: mixnet_ref(P, x, train, version), train)
    assert y.shape == (2, 4, 16, 16)


def test_mixnet_versions_fuse_the_modalities_differently():
    names = {v: set(resdsl.graph(os.path.join(STD, "mixnet.res"), f"mixnet_v{v}").param_names()) for v in (1, 2, 3)}
    assert not any(k.startswith(("modality.", "mix.")) for k in names[1]) and "stacked.stem.weight" in names[1]
    assert {"modality.0.stem.weight", "modality.2.stem.weight", "mix.weight"} <= names[2]
    assert not any(k.startswith("stacked.") for k in names[2])
    assert names[2] < names[3] and "stacked.stem.weight" in names[3]


# ---------------------------------------------------------------- EDNet
def resblock(P, name, h, train):
    r = F.relu(bn(P, name + ".bn1", F.conv2d(h, P[name + ".conv1.weight"], padding=1), train))
    return F.relu(h + bn(P, name + ".bn2", F.conv2d(r, P[name + ".conv2.weight"], padding=1), train))


def warp(img, disp):
    """The right image sampled at x - disp(x) (bilinear, zeros outside): grid_sample."""
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    gx = 2 * (xs - disp[:, 0]) / (w - 1) - 1
    gy = (2 * ys / (h - 1) - 1).expand_as(gx)
    return F.grid_sample(img, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="zeros", align_corners=True)


def ednet_ref(P, left, right, train, max_disp=12):
    def features(x):
        h = F.relu(bn(P, "features.bn1", F.conv2d(x, P["features.conv1.weight"], stride=2, padding=1), train))
        h = resblock(P, "features.res1", h, train)
        h = F.relu(bn(P, "features.bn2", F.conv2d(h, P["features.conv2.weight"], stride=2, padding=1), train))
        return resblock(P, "features.res2", h, train)

    def shifted(r, d):  # r(x - d), zeros entering
        return F.pad(r, (d, 0))[..., :r.shape[-1]]

    fl, fr = features(left), features(right)
    d4 = max_disp // 4
    corr = torch.stack([(fl * shifted(fr, d)).mean(1) for d in range(d4)], 1)
    cl, cr = F.conv2d(fl, P["compress.weight"]), F.conv2d(fr, P["compress.weight"])
    vol = torch.stack([torch.cat([cl, shifted(cr, d)], 1) for d in range(d4)], 2)  # [N, 2s, D, H, W]
    vol = F.relu(bn(P, "concat_volume.bn1", F.conv3d(vol, P["concat_volume.conv1.weight"], padding=1), train))
    sq = F.conv3d(vol, P["concat_volume.conv2.weight"], P["concat_volume.conv2.bias"], padding=1)[:, 0]
    v = torch.cat([corr, sq, F.relu(conv(P, "redir", fl))], 1)

    def down(name, h, stride):
        h = F.relu(bn(P, name + "_bn", F.conv2d(h, P[name + ".weight"], stride=stride, padding=1), train))
        return resblock(P, name + "_res", h, train)

    a0 = down("agg0", v, 1)
    a1 = down("agg1", a0, 2)
    a2 = down("agg2", a1, 2)
    def up_skip(name, h, skip):
        h = F.relu(F.conv_transpose2d(h, P[name + ".weight"], P[name + ".bias"], stride=2, padding=1))
        return resblock(P, name + "_res", h + skip, train)

    u1 = up_skip("up1", a2, a1)
    u0 = up_skip("up0", u1, a0)
    disp = F.relu(conv(P, "predict", u0, padding=1))

    def up(d):
        return 2 * F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)

    def refine(name, disp, lv, rv, dmax):
        err = (lv - warp(rv, disp.clamp(0, dmax - 1))).abs()
        att = torch.sigmoid(conv(P, name + ".att2", F.relu(conv(P, name + ".att1", err, padding=1)), padding=1))
        f = F.conv2d(torch.cat([lv, err, disp], 1), P[name + ".conv1.weight"], padding=1)
        f = F.relu(bn(P, name + ".bn1", f, train))
        f = resblock(P, name + ".res2", resblock(P, name + ".res1", f, train), train)
        return F.relu(disp + conv(P, name + ".out", f * att, padding=1))

    disp = refine("refine2", up(disp), F.avg_pool2d(left, 2), F.avg_pool2d(right, 2), max_disp // 2)
    return refine("refine1", up(disp), left, right, max_disp)


@pytest.mark.parametrize("train", [True, False])
def test_ednet_matches_its_equations(train):
    gm, P, xs = tiny("ednet", torch.float64)  # a deep net with batch norm: float64 keeps the sums exact enough
    with torch.no_grad():  # a disparity of a few pixels, inside the warp's range and away from relu's kink
        P["predict.bias"].fill_(1.0)
        gm.get_submodule("predict").bias.fill_(1.0)
    y = check(gm, P, xs, ednet_ref, train, rtol=1e-7, atol=1e-9)
    assert y.shape == (2, 1, 32, 32)


def test_ednet_warp_is_linear_interpolation():
    """The warp block alone: sum_d max(0, 1 - |disp - d|) R(x - d) equals grid_sample's bilinear
    sampling at x - disp for disparities in [0, D - 1], and their gradients with respect to the
    disparity and the image agree."""
    src = ("import ednet\n\nnetwork w(D: int = 6) {\n    input disp: [N, 1, H, W], r: [N, 3, H, W]\n"
           "    Warp(D, disp, r) as warp\n}\n")
    g = torch.Generator().manual_seed(3)
    disp = (torch.rand(2, 1, 5, 9, generator=g) * 5).requires_grad_(True)
    r = torch.randn(2, 3, 5, 9, generator=g, requires_grad=True)
    m = resdsl.build(src, network="w")
    y = m(disp, r)
    d2, r2 = disp.detach().clone().requires_grad_(True), r.detach().clone().requires_grad_(True)
    want = warp(r2, d2)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    c = torch.randn(y.shape, generator=g)
    (y * c).sum().backward()
    (want * c).sum().backward()
    torch.testing.assert_close(disp.grad, d2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r.grad, r2.grad, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- AutoLUT
class RoundSTE(torch.autograd.Function):
    """Forward round, backward identity (MuLUT's BPDA round_func)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def autolut_unit(P, pre, patch, scale, act=F.gelu):
    """MuLUT's unit on [M, 1, 2, 2] patches -> [M, 1, scale, scale]."""
    h = act(F.conv2d(patch, P[pre + "conv1.conv.weight"], P[pre + "conv1.conv.bias"]))
    for i in range(2, 6):
        h = torch.cat([h, act(conv(P, f"{pre}conv{i}.conv1.conv", h))], 1)
    return F.pixel_shuffle(torch.tanh(conv(P, pre + "conv6.conv", h)), scale)


def autolut_srnet(P, pre, x, prev, k, scale):
    """One sampler of one stage on a rotated, padded image [B, 1, n + k - 1, n + k - 1]: every k x k
    window (F.unfold), sampled with softmax weights to a 2 x 2 patch, mixed with the previous stage's
    samples (AdaRL), through the unit, folded back to [B, 1, n * scale, n * scale]."""
    b, _, hp, _ = x.shape
    n = hp - (k - 1)
    w = torch.softmax(P[pre + "sampler"].reshape(4, -1), 1).reshape(4, 1, k, k)

    def sample(img):
        win = F.unfold(img, k).transpose(1, 2).reshape(-1, 1, k, k)  # [B*n*n, 1, k, k]
        return F.pixel_shuffle(F.conv2d(win, w), 2)                  # [B*n*n, 1, 2, 2]

    s = sample(x)
    if prev is not None:
        rw = P[pre + "residual"].clamp(0, 1)
        s = rw * sample(prev) + (1 - rw) * s
    y = autolut_unit(P, pre + "model.", s, scale)                    # [B*n*n, 1, scale, scale]
    y = y.reshape(b, n * n, scale * scale).transpose(1, 2)
    return F.fold(y, (n * scale, n * scale), scale, stride=scale)


def autolut_ref(P, img, train, stages=2, samplers=2, k=3, scale=2):
    n, c = img.shape[0], img.shape[1]
    x = img.reshape(n * c, 1, *img.shape[2:])
    prev = None
    for st in range(stages):
        last = st == stages - 1
        pred = 0
        for i in range(samplers):
            for r in range(4):
                def rot(t, r=r):
                    if t is None:
                        return None
                    return F.pad(torch.rot90(t, r, [2, 3]), (0, k - 1, 0, k - 1), mode="replicate")
                y = autolut_srnet(P, f"s{st}_{i}.", rot(x), rot(prev), k, scale if last else 1)
                pred = pred + RoundSTE.apply(torch.rot90(y, (4 - r) % 4, [2, 3]) * 127)
        prev = x
        if last:
            x = RoundSTE.apply(pred / samplers) / 255
        else:
            x = RoundSTE.apply(torch.clamp(pred / (samplers * 4) + 127, 0, 255)) / 255
    return x.reshape(n, c, *x.shape[2:])


def test_autolut_matches_its_equations():
    # in float64: the roundings of both sides then see the same values
    gm, P, xs = tiny("autolut", torch.float64)
    y = check(gm, P, xs, autolut_ref, True, rtol=1e-9, atol=1e-9)
    assert y.shape == (2, 1, 16, 16)
    assert torch.equal(y * 255, (y * 255).round())  # the output is quantized to 1/255


def test_autolut_paper_configuration():
    """MuLUT+AutoLUT as the authors train it: 2 stages x 3 samplers, 5 x 5 windows, 64 features, x4.
    266,199 parameters = the code's SRNets (266,223) less the six unused sampler biases (4 each)."""
    g = resdsl.graph(os.path.join(STD, "autolut.res"), "autolut_mulut_x4")
    shapes = {k: tuple(s.shape) for k, s in g.param_names().items()}
    assert sum(int(np.prod(s)) for s in shapes.values()) == 266_199
    assert shapes["s0_2.sampler"] == (4, 1, 5, 5) and shapes["s1_0.residual"] == (2, 2)
    assert "s0_0.residual" not in shapes
    assert shapes["s1_2.model.conv6.conv.weight"] == (16, 320, 1, 1)
    assert shapes["s0_0.model.conv6.conv.weight"] == (1, 320, 1, 1)


# ---------------------------------------------------------------- the torch file and ONNX
@pytest.mark.parametrize("key", sorted(TINY))
def test_torch_file_and_onnx_compute_what_the_tree_computes(key, tmp_path):
    f, net, params, _ = TINY[key]
    path = os.path.join(STD, f)
    xs = inputs(key)
    gm = resdsl.build(path, network=net, seed=0, **params).eval()
    y = gm(*xs).detach()
    out = tmp_path / "gen.py"
    out.write_text(resdsl.to_python(path, network=net, **params))
    mod = import_file(out, "gen_" + key)
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    m = fn(seed=0).eval()
    assert m.state_dict().keys() == gm.state_dict().keys()
    torch.testing.assert_close(m(*xs), y, rtol=0, atol=0)
    model = resdsl.to_onnx(path, network=net, seed=0, **params)
    s = ort.InferenceSession(model.SerializeToString())
    got = s.run(None, {i.name: x.numpy() for i, x in zip(s.get_inputs(), xs)})[0]
    np.testing.assert_allclose(got, y.numpy(), rtol=1e-4, atol=1e-5)
