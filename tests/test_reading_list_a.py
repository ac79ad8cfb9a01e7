"""The reading-list networks built on the per-sample ops (stdlib/skipnet.res, soundstream.res,
resfields.res, smore.res): no pip package implements these papers' networks, so each is checked
against a direct PyTorch transcription of its paper's equations on a small configuration:
outputs AND gradients equal, with every parameter randomised first (conftest.randomize) and
read by name from the built module. SoundStream's residual VQ is also checked against EnCodec's
(tests/test_vq.py). Each network also compiles to a standalone torch file and to ONNX, and both
compute what the module tree computes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, randomize

import resdsl
from conftest import import_file

STD = os.path.join(ROOT, "stdlib")
G = torch.Generator().manual_seed(0)

# network file, network, small parameters, inputs
TINY = {
    "skipnet": ("skipnet.res", "SkipNet", {"layers": [2, 2, 2]}, lambda: (torch.randn(4, 3, 32, 32, generator=G),)),
    "soundstream": ("soundstream.res", "SoundStream",
                    {"c": 2, "d": 8, "strides": [2, 2], "quantizers": 3, "codes": 16, "samples": 16},
                    lambda: (torch.randn(2, 1, 16, generator=G),)),
    "resfields": ("resfields.res", "ResFieldsMLP", {"width": 8, "depth": 3, "frames": 5, "rank": 2,
                                                    "fields": [0, 2]},
                  lambda: (torch.randn(3, 4, 3, generator=G), torch.tensor([0, 4, 2]))),
    "smore": ("smore.res", "SMoRETransformer", {"vocab": 20, "ctx": 6, "d": 8, "heads": 2, "layers": 2, "classes": 3},
              lambda: (torch.randint(0, 20, (3, 6), generator=G),)),
}


def tiny(key, seed=0):
    f, net, params, inputs = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=seed, **params)
    P = randomize(gm, scale=0.3)
    params = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in params) for k, v in P.items()}, inputs()


def outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def check_outputs_and_grads(gm, P, xs, ref, train):
    """The module and the transcription: equal outputs, and equal gradients of every parameter
    for the loss sum(out_i * r_i) + the scalar outputs (the auxiliary losses)."""
    gm.train(train)
    ys = outputs(gm(*xs))
    want = outputs(ref(P, *xs, train=train))
    assert len(ys) == len(want)
    for y, w in zip(ys, want):
        torch.testing.assert_close(y, w, rtol=1e-4, atol=1e-5)
    if not train:
        return ys
    rs = [torch.randn(y.shape, generator=torch.Generator().manual_seed(7)) for y in ys]
    sum(((y * r).sum() for y, r in zip(ys, rs))).backward()
    sum(((w * r).sum() for w, r in zip(want, rs))).backward()
    named = dict(gm.named_parameters())
    checked = 0
    for k, p in named.items():
        g_ref = P[k].grad
        if p.grad is None:
            assert g_ref is None or torch.all(g_ref == 0), k
            continue
        torch.testing.assert_close(p.grad, g_ref, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
        checked += 1
    assert checked >= len(named) // 2, f"only {checked} of {len(named)} parameters got a gradient"
    return ys


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


# ---------------------------------------------------------------- SkipNet
def skipnet_ref(P, x, train):
    """Wang et al. 2018: x_{i+1} = G_i(x_i) F_i(x_i) + (1 - G_i(x_i)) S_i(x_i); FFGate-I; the gate
    hard forward, the sigmoid's gradient backward (the paper's straight-through pre-training)."""
    def gate(pre, h):
        h = F.max_pool2d(h, 2)
        h = F.relu(bn(P, pre + "bn1", F.conv2d(h, P[pre + "conv1.weight"], padding=1), train))
        h = F.relu(bn(P, pre + "bn2", F.conv2d(h, P[pre + "conv2.weight"], stride=2, padding=1), train))
        p = torch.sigmoid(h.mean((2, 3)) @ P[pre + "gate.weight"].T + P[pre + "gate.bias"])
        hard = (p > 0.5).float()
        return (hard - p.detach() + p if train else hard).view(-1, 1, 1, 1)

    h = F.relu(bn(P, "bn1", F.conv2d(x, P["conv1.weight"], padding=1), train))
    for s, planes in enumerate([16, 32, 64]):
        for i in range(2):
            pre = f"layer{s + 1}.{i}."
            stride = 2 if s > 0 and i == 0 else 1
            if stride != 1 or h.shape[1] != planes:
                skip = bn(P, pre + "downsample.1", F.conv2d(h, P[pre + "downsample.0.weight"], stride=stride), train)
            else:
                skip = h
            y = F.relu(bn(P, pre + "bn1", F.conv2d(h, P[pre + "conv1.weight"], stride=stride, padding=1), train))
            y = F.relu(bn(P, pre + "bn2", F.conv2d(y, P[pre + "conv2.weight"], padding=1), train) + skip)
            if not (s == 0 and i == 0):
                g = gate(pre + "gate.", h)
                y = g * y + (1 - g) * skip
            h = y
    return F.linear(h.mean((2, 3)), P["fc.weight"], P["fc.bias"])


@pytest.mark.parametrize("train", [False, True])
def test_skipnet_matches_its_equations(train):
    gm, P, xs = tiny("skipnet")
    check_outputs_and_grads(gm, P, xs, skipnet_ref, train)


def test_skipnet_gates_decide_per_sample_and_skip_the_block():
    """At inference each gate is 0 or 1 per sample; a gate at 0 gives the block's shortcut."""
    gm, _, (x,) = tiny("skipnet")
    gm.eval()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for n, m in gm.named_modules()
             if type(m).__name__ == "SkipGate"]
    with torch.no_grad():
        gm(x)
    for h in hooks:
        h.remove()
    assert len(seen) == 5  # every block but the first
    for g in seen:
        assert g.shape == (4, 1, 1, 1) and set(g.unique().tolist()) <= {0.0, 1.0}
    # one block with its gate forced shut is its shortcut (identity here)
    blk = gm.get_submodule("layer1.1")
    with torch.no_grad():
        blk.gate.gate.bias.fill_(-1e4)
        h = torch.randn(2, 16, 8, 8)
        assert torch.equal(blk(h), h)


def test_skipnet_38_and_110_shapes():
    for net, blocks in [("skipnet38_cifar", 6), ("skipnet110_cifar", 18)]:
        g = resdsl.graph(os.path.join(STD, "skipnet.res"), network=net)
        convs = [n for n in g.nodes if n.op == "conv" and ".gate." not in n.path and "downsample" not in n.path]
        assert len(convs) == 1 + 3 * blocks * 2  # the stem and two per basic block: 6n + 2 layers with fc
        assert sum(n.op == "skip_gate" for n in g.nodes) == 3 * blocks - 1


# ---------------------------------------------------------------- SoundStream
def _cconv(x, w, b, stride=1, dilation=1):
    return F.conv1d(F.pad(x, ((w.shape[-1] - 1) * dilation, 0)), w, b, stride, dilation=dilation)


def soundstream_ref(P, x, train, strides=(2, 2), quantizers=3):
    """Zeghidour et al. 2021, Fig. 2 and Algorithm 1, causal convolutions, ELU."""
    def conv(pre, h, **kw):
        return _cconv(h, P[pre + "conv.weight"], P[pre + "conv.bias"], **kw)

    def unit(pre, h, dilation):
        y = F.elu(conv(pre + "conv1.", h, dilation=dilation))
        return F.elu(h + F.conv1d(y, P[pre + "conv2.weight"], P[pre + "conv2.bias"]))

    h = F.elu(conv("encoder.stem.", x))
    for i, s in enumerate(strides):
        for j, dil in enumerate((1, 3, 9)):
            h = unit(f"encoder.blocks.{i}.res{j + 1}.", h, dil)
        h = F.elu(conv(f"encoder.blocks.{i}.down.", h, stride=s))
    r = conv("encoder.proj.", h).transpose(1, 2)
    out, loss = 0, 0
    for i in range(quantizers):  # Algorithm 1: each stage quantizes the residual of the one before
        cb = P[f"quantizer.layers.{i}.codebook"]
        q = cb[((r[..., None, :] - cb) ** 2).sum(-1).argmin(-1)]
        loss = loss + F.mse_loss(q, r.detach()) + 0.25 * F.mse_loss(r, q.detach())
        q = r + (q - r).detach()  # straight-through
        out = out + q
        r = r - q
    h = out.transpose(1, 2)
    h = F.elu(conv("decoder.stem.", h))
    for i, s in enumerate(reversed(strides)):
        n = h.shape[2]
        h = F.conv_transpose1d(h, P[f"decoder.blocks.{i}.up.weight"], P[f"decoder.blocks.{i}.up.bias"], stride=s)
        h = F.elu(h[..., :n * s])
        for j, dil in enumerate((1, 3, 9)):
            h = unit(f"decoder.blocks.{i}.res{j + 1}.", h, dil)
    return conv("decoder.proj.", h), loss


@pytest.mark.parametrize("train", [False, True])
def test_soundstream_matches_its_equations(train):
    gm, P, xs = tiny("soundstream")
    y, loss = check_outputs_and_grads(gm, P, xs, soundstream_ref, train)
    assert y.shape == (2, 1, 16) and loss.shape == ()


def test_soundstream_24khz_frame_rate_and_bitrate():
    """320 samples per frame (2 x 4 x 5 x 8): 75 frames/s at 24 kHz; 8 codebooks of 1024 = 6 kbps."""
    g = resdsl.graph(os.path.join(STD, "soundstream.res"), network="soundstream_24khz")
    vqs = [n for n in g.nodes if n.op == "vq"]
    assert len(vqs) == 8 and all(n.attrs["codes"] == 1024 for n in vqs)
    frames = vqs[0].inputs[0].shape[1].size
    assert 3200 // frames == 320
    assert 24000 // 320 * len(vqs) * 10 == 6000
    assert g.outputs[0].shape[2].size == 3200


# ---------------------------------------------------------------- ResFields
def resfields_ref(P, p, t, train):
    """Mihajlovic et al. 2023: W(t) = W + sum_r v[t, r] M_r in the ResField layers (0 and 2)."""
    h = p
    for i in range(3):
        pre = f"layers.{i}."
        if i in (0, 2):
            w = P[pre + "weight"] + torch.einsum("nr,roi->noi", P[pre + "coeffs"][t], P[pre + "basis"])
            h = torch.einsum("npi,noi->npo", h, w) + P[pre + "bias"]
        else:
            h = F.linear(h, P[pre + "weight"], P[pre + "bias"])
        h = F.softplus(h, beta=100.0)
    return F.linear(h, P["head.weight"], P["head.bias"])


@pytest.mark.parametrize("train", [False, True])
def test_resfields_matches_its_equation(train):
    gm, P, xs = tiny("resfields")
    check_outputs_and_grads(gm, P, xs, resfields_ref, train)


def test_resfields_weights_differ_per_frame_only_by_the_residual():
    """Two samples with the same points and different frames differ; with the coefficients zero
    the field is its plain MLP."""
    gm, _, _ = tiny("resfields")
    p = torch.randn(1, 4, 3).expand(2, 4, 3)
    with torch.no_grad():
        y = gm(p, torch.tensor([1, 3]))
        assert not torch.allclose(y[0], y[1])
        for name, prm in gm.named_parameters():
            if name.endswith("coeffs"):
                prm.zero_()
        y = gm(p, torch.tensor([1, 3]))
    torch.testing.assert_close(y[0], y[1])


# ---------------------------------------------------------------- S'MoRE
def topk_gates(x, w, k):
    p = torch.softmax(x @ w.T, -1)
    top, idx = p.topk(k, -1)
    gates = torch.zeros_like(p).scatter(-1, idx, top)
    e = p.shape[-1]
    f = torch.zeros_like(p).scatter(-1, idx, 1.0).reshape(-1, e).mean(0) / k
    return gates, e * (f * p.reshape(-1, e).mean(0)).sum()


def smore_ref(P, ids, train, d=8, heads=2):
    """The adapter's equations (stdlib/smore.res): y = W0 x + sum_j g1_j B1_j (A1_j x + h),
    h = sum_i g0_i B0_i A0_i x; the backbone a pre-norm transformer."""
    def lin(name, x):
        return F.linear(x, P[name + ".weight"], P.get(name + ".bias"))

    def smore(pre, x):
        g0, a0 = topk_gates(x, P[pre + "router0.weight"], 2)
        h = sum(g0[..., i:i + 1] * lin(f"{pre}experts0.{i}.B", lin(f"{pre}experts0.{i}.A", x)) for i in range(4))
        g1, a1 = topk_gates(x, P[pre + "router1.weight"], 1)
        y = lin(pre + "base", x) + sum(
            g1[..., j:j + 1] * lin(f"{pre}experts1.{j}.B", lin(f"{pre}experts1.{j}.A", x) + h) for j in range(2))
        return y, a0 + a1

    def attn(pre, x):
        q, k, v = F.linear(x, P[pre + "in_proj_weight"], P[pre + "in_proj_bias"]).chunk(3, -1)
        n, length = x.shape[:2]
        q, k, v = (t.reshape(n, length, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, -1) @ v
        return lin(pre + "out_proj", a.transpose(1, 2).reshape(n, length, d))

    h = P["tok.weight"][ids] + P["pos"]
    balance = 0
    for i in range(2):
        pre = f"layers.{i}."
        h = h + attn(pre + "attn.", F.layer_norm(h, (d,), P[pre + "ln_1.weight"], P[pre + "ln_1.bias"]))
        u, a1 = smore(pre + "fc.", F.layer_norm(h, (d,), P[pre + "ln_2.weight"], P[pre + "ln_2.bias"]))
        v, a2 = smore(pre + "proj.", F.gelu(u))
        h = h + v
        balance = balance + a1 + a2
    h = F.layer_norm(h, (d,), P["norm.weight"], P["norm.bias"]).mean(1)
    return F.linear(h, P["head.weight"], P["head.bias"]), balance


@pytest.mark.parametrize("train", [False, True])
def test_smore_matches_its_equations(train):
    gm, P, xs = tiny("smore")
    logits, balance = check_outputs_and_grads(gm, P, xs, smore_ref, train)
    assert logits.shape == (3, 3) and balance.shape == ()


def test_smore_balance_loss_is_one_when_balanced():
    """The Switch load-balancing loss E * sum_e f_e P_e is 1 for a uniform router (its minimum)."""
    gm, _, (ids,) = tiny("smore")
    with torch.no_grad():
        for name, p in gm.named_parameters():
            if ".router" in name:
                p.zero_()
        _, balance = gm(ids)
    torch.testing.assert_close(balance, torch.tensor(8.0))  # 4 adapted layers, two routers each


# ---------------------------------------------------------------- every target
@pytest.mark.parametrize("key", sorted(TINY))
def test_generated_torch_file_computes_the_same(key, tmp_path):
    f, net, params, inputs = TINY[key]
    src = resdsl.to_python(os.path.join(STD, f), network=net, **params)
    path = tmp_path / f"{key}_gen.py"
    path.write_text(src)
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
    state = randomize(gm, scale=0.3)
    gm.eval()
    model = resdsl.to_onnx(path, network=net, weights=state, **params)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = inputs()
    feeds = {}
    for i, x in zip(sess.get_inputs(), xs):
        feeds[i.name] = x.numpy().astype(np.int64 if "int64" in i.type else np.float32)
    got = sess.run(None, feeds)
    with torch.no_grad():
        want = outputs(gm(*xs))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5)
