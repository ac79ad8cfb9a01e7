"""The speech and audio networks of the reading list (issue 22): SpeedySpeech's student
(stdlib/speedyspeech.res), the APNet vocoder (apnet.res), ReDimNet (redimnet.res) and the
complex-valued multidilated AEC network (aec_mdcnn.res). No pip package implements any of them
(the authors publish their code on GitHub only), so each is checked against a direct PyTorch
transcription of its paper's equations on a small configuration, written here without resdsl:
outputs AND gradients equal, every parameter randomised first and read by name, train and eval
mode where they differ (batch norm). Each network also compiles to a standalone torch file and
to ONNX, and both compute what the module tree computes."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_file, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")


def outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def check(gm, P, inputs, ref, train, rtol=1e-4, atol=1e-5):
    """gm(*inputs) against ref(P, *inputs, train): every output equal, then one random cotangent
    per output backpropagated through both, the gradients of every parameter equal."""
    gm.train(train)
    gm.zero_grad(set_to_none=True)
    for v in P.values():
        v.grad = None
    P.update({k: b.detach().clone() for k, b in gm.named_buffers()})  # running statistics as they are now
    ours, want = outputs(gm(*inputs)), outputs(ref(P, *inputs, train))
    assert len(ours) == len(want)
    total_ours = total_want = 0
    g = torch.Generator().manual_seed(7)
    for a, b in zip(ours, want):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
        r = torch.randn(a.shape, generator=g, dtype=a.dtype)
        total_ours = total_ours + (a * r).sum()
        total_want = total_want + (b * r).sum()
    total_ours.backward()
    total_want.backward()
    for k, p in gm.named_parameters():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}")
    return ours


def tiny(f, net, params, seed=1, scale=0.3, dtype=torch.float32):
    """The small network with random weights, and those weights as leaf tensors by name (the
    parameters asking for a gradient, the batch-norm statistics not). float64 for the deep ones,
    whose float32 gradients differ by rounding alone."""
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params)
    randomize(gm, seed=seed, scale=scale)
    gm = gm.to(dtype)
    P = {k: v.detach() for k, v in gm.state_dict().items()}
    named = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in named and v.is_floating_point()) for k, v in P.items()}


def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


def conv1d(P, name, x, **kw):
    return F.conv1d(x, P[name + ".weight"], P.get(name + ".bias"), **kw)


# ---------------------------------------------------------------- APNet
APNET = ("apnet.res", "APNet", {"mels": 6, "c": 8, "n_fft": 16, "hop": 2, "win": 8, "frames": 12})


def apnet_ref(P, mel, train, kernels=(3, 7, 11)):
    """Ai & Ling 2023, Fig. 1 and Sec. 2: ASP and PSP, each conv_in -> the mean of three residual
    blocks (k = 3, 7, 11; dilations 1, 3, 5) -> leaky ReLU; log A = conv_out, the phase
    Phi(R, I) = arctan(I / R) - pi/2 Sgn*(I) (Sgn*(R) - 1), written as the paper writes it."""
    def rb(pre, x, k):
        for i, d in enumerate((1, 3, 5)):
            t = conv1d(P, f"{pre}.convs1.{i}", F.leaky_relu(x, 0.1), dilation=d, padding=d * (k - 1) // 2)
            x = x + conv1d(P, f"{pre}.convs2.{i}", F.leaky_relu(t, 0.1), padding=(k - 1) // 2)
        return x

    def trunk(pre, x):
        h = conv1d(P, pre + "_input_conv", x, padding=3)
        return F.leaky_relu(sum(rb(f"{pre}_resnet.{j}", h, k) for j, k in enumerate(kernels)) / len(kernels))

    logamp = conv1d(P, "asp_output_conv", trunk("asp", mel), padding=3)
    h = trunk("psp", mel)
    r, i = conv1d(P, "psp_output_r_conv", h, padding=3), conv1d(P, "psp_output_i_conv", h, padding=3)
    sgn = lambda v: torch.where(v >= 0, 1.0, -1.0)  # the paper's Sgn*
    phase = torch.atan(i / r) - math.pi / 2 * sgn(i) * (sgn(r) - 1)
    a = torch.exp(logamp)
    re, im = a * torch.cos(phase), a * torch.sin(phase)
    audio = torch.istft(torch.complex(re, im), 16, hop_length=2, win_length=8, window=torch.hann_window(8), center=True)
    return logamp, phase, re, im, audio[:, None]


def test_apnet_matches_its_equations():
    gm, P = tiny(*APNET, scale=0.1)  # small weights: exp(log A) stays moderate
    mel = torch.randn(2, 6, 12, generator=torch.Generator().manual_seed(0))
    logamp, phase, re, im, audio = check(gm, P, (mel,), apnet_ref, True)
    assert logamp.shape == (2, 9, 12) and audio.shape == (2, 1, 2 * 11)
    assert phase.abs().max() <= math.pi
    # the real and imaginary spectra are the amplitude and phase's: |S| = exp(log A)
    torch.testing.assert_close(torch.hypot(re, im), torch.exp(logamp))


def test_apnet_paper_configuration():
    g = resdsl.graph(os.path.join(STD, "apnet.res"), network="apnet")
    assert [tuple(a.size for a in o.shape[1:]) for o in g.outputs] == [(513, 100)] * 4 + [(1, 80 * 99)]
    shapes = {k: tuple(p.shape) for k, p in g.param_names().items()}
    assert shapes["asp_input_conv.weight"] == (512, 80, 7)
    assert shapes["psp_resnet.2.convs1.2.weight"] == (512, 512, 11)
    assert shapes["psp_output_i_conv.weight"] == (513, 512, 7)


@pytest.mark.parametrize("n_fft,hop,win", [(1024, 80, 320), (16, 4, 16), (12, 3, 6)])
def test_apnet_istft_is_torch_istft(n_fft, hop, win):
    """The ISTFT block at the paper's sizes (and at a full-length and a short window) against
    torch.istft (center=True, a periodic Hann window), on random spectra."""
    src = ("import apnet\nnetwork istft_only(n_fft: int, hop: int, win: int) {\n"
           "    input re: [N, F=n_fft // 2 + 1, T=30]\n    input im: [N, F=n_fft // 2 + 1, T=30]\n"
           "    ISTFT(n_fft, hop, win)(re, im)\n}\n")
    gm = resdsl.build(src, network="istft_only", n_fft=n_fft, hop=hop, win=win)
    g = torch.Generator().manual_seed(1)
    re, im = torch.randn(2, n_fft // 2 + 1, 30, generator=g), torch.randn(2, n_fft // 2 + 1, 30, generator=g)
    want = torch.istft(torch.complex(re, im), n_fft, hop_length=hop, win_length=win,
                       window=torch.hann_window(win), center=True)
    torch.testing.assert_close(gm(re, im)[:, 0], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- SpeedySpeech
SPEEDY = ("speedyspeech.res", "SpeedySpeech",
          {"alphabet": 10, "c": 8, "mels": 5, "enc_dilations": [1, 2, 1], "dec_dilations": [1, 2, 4, 8],
           "plen": 8, "frames": 26})
# 21 and 26 frames of 26: the first padded after its last phoneme; a phoneme of no frame
DURATIONS = [[3, 1, 4, 0, 2, 5, 4, 2], [2, 5, 1, 3, 3, 4, 6, 2]]


def speedy_inputs():
    g = torch.Generator().manual_seed(0)
    phonemes = torch.randint(1, 10, (2, 8), generator=g)
    alignment = torch.zeros(2, 26, 8)
    for n, ds in enumerate(DURATIONS):
        frames = torch.repeat_interleave(torch.arange(8), torch.tensor(ds))
        alignment[n, torch.arange(len(frames)), frames] = 1.0
    return phonemes, alignment


def speedy_ref(P, phonemes, alignment, train):
    """Vainer & Dušek 2020, Fig. 2 and Sec. 3.2: the student's encoder, duration predictor,
    expansion by the durations (torch.repeat_interleave, the positions inside each phoneme
    counted one by one) and decoder. Channels-first [N, C, T] throughout."""
    def block(pre, x, k, d, n=2):
        h, total = x, d * (k - 1)
        for i in range(n):
            h = conv1d(P, f"{pre}.blocks.{i}.0", h, dilation=d)
            h = F.pad(h, (total // 2, total - total // 2))   # ZeroTemporalPad: zeros after the conv
            h = bn(P, f"{pre}.blocks.{i}.3", F.relu(h), train)
        return x + h

    emb = F.embedding(phonemes, P["encoder.prenet.0.weight"]).transpose(1, 2)
    e = F.relu(conv1d(P, "encoder.prenet.1", emb))
    h = e
    for i, d in enumerate(SPEEDY[2]["enc_dilations"]):
        h = block(f"encoder.res_blocks.{i}", h, 4, d)
    h = conv1d(P, "encoder.post_net1.0", h) + e
    enc = conv1d(P, "encoder.post_net2.2", bn(P, "encoder.post_net2.1", F.relu(h), train))

    t = enc
    for i, k in enumerate((4, 3, 1)):
        t = block(f"duration_predictor.layers.{i}", t, k, 1, n=1)
    log_d = conv1d(P, "duration_predictor.layers.3", t)[:, 0]

    c, frames = enc.shape[1], alignment.shape[1]
    rows = []
    for n, ds in enumerate(DURATIONS):
        x = torch.repeat_interleave(enc[n], torch.tensor(ds), dim=1)              # [C, sum(d)]
        pos = torch.cat([torch.arange(float(dd)) for dd in ds])                      # 0 .. d-1 per phoneme
        i = torch.arange(c // 2, dtype=torch.float32)
        angle = pos[:, None] / 10000.0 ** (2 * i / c)
        pe = torch.stack([torch.sin(angle), torch.cos(angle)], -1).reshape(len(pos), c).T
        rows.append(F.pad(x + pe, (0, frames - x.shape[1])))                        # zero frames after the last
    x = torch.stack(rows)

    h = x
    for i, d in enumerate(SPEEDY[2]["dec_dilations"]):
        h = block(f"decoder.res_blocks.{i}", h, 4, d)
    h = conv1d(P, "decoder.post_net1.0", h) + x
    mel = conv1d(P, "decoder.post_net2.1", block("decoder.post_net2.0", h, 4, 1))
    return mel, log_d


def test_speedyspeech_matches_its_equations():
    gm, P = tiny(*SPEEDY)
    for train in (True, False):
        mel, log_d = check(gm, P, speedy_inputs(), speedy_ref, train)
    assert mel.shape == (2, 5, 26) and log_d.shape == (2, 8)


def test_speedyspeech_paper_configuration():
    g = resdsl.graph(os.path.join(STD, "speedyspeech.res"), network="speedyspeech")
    shapes = {k: tuple(p.shape) for k, p in g.param_names().items()}
    assert len({k.split(".blocks")[0] for k in shapes if k.startswith("encoder.res_blocks.")}) == 13
    assert len({k.split(".blocks")[0] for k in shapes if k.startswith("decoder.res_blocks.")}) == 17
    assert shapes["encoder.res_blocks.12.blocks.1.0.weight"] == (128, 128, 4)
    assert shapes["duration_predictor.layers.1.blocks.0.0.weight"] == (128, 128, 3)
    assert shapes["decoder.post_net2.1.weight"] == (80, 128, 1)


# ---------------------------------------------------------------- ReDimNet
REDIM = ("redimnet.res", "ReDimNet",
         {"freqs": 8, "c": 4, "strides": [1, 2, 2], "blocks": [1, 2, 1], "reductions": [2, 2, 4], "gdiv": 2,
          "pos_kernel": 5, "bottleneck": 8, "embed": 6, "frames": 20})


def redimnet_ref(P, mel, train, c=4, strides=(1, 2, 2), blocks=(1, 2, 1), gdiv=2, heads=4):
    """Yakovlev et al. 2024, Fig. 1 and Sec. 2: one volume c x f throughout; to1d / to2d between
    [N, c, f, T] and [N, f c, T]; every stage reads a softmax-weighted sum of all earlier 1D
    outputs; ConvNeXt-like 2D blocks, then a time-context block (a post-norm transformer layer
    after a depthwise positional convolution); attentive statistics pooling, BN, linear."""
    def to1d(x):
        n, ch, f, t = x.shape
        return x.permute(0, 2, 1, 3).reshape(n, f * ch, t)

    def to2d(x, ch):
        n, cf, t = x.shape
        return x.reshape(n, cf // ch, ch, t).permute(0, 2, 1, 3)

    def ln_channels(pre, x):  # LayerNorm over axis 1, eps 1e-6
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - u) / torch.sqrt(s + 1e-6) * P[pre + ".weight"].reshape(shape) + P[pre + ".bias"].reshape(shape)

    def weighted(pre, xs):
        w = torch.softmax(P[pre + ".w"], dim=1)
        return (torch.stack(xs, 1) * w).sum(1)

    def lin(pre, x):
        return F.linear(x, P[pre + ".weight"], P[pre + ".bias"])

    def transformer(pre, x):  # [N, T, d]
        n, t, d = x.shape
        q, k, v = (lin(f"{pre}.attention.{m}_proj", x).reshape(n, t, heads, d // heads).transpose(1, 2)
                   for m in "qkv")
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1) @ v
        x = x + lin(pre + ".attention.out_proj", a.transpose(1, 2).reshape(n, t, d))
        x = F.layer_norm(x, (d,), P[pre + ".layer_norm.weight"], P[pre + ".layer_norm.bias"], 1e-6)
        f = F.gelu(lin(pre + ".feed_forward.intermediate_dense", x), approximate="tanh")
        x = x + lin(pre + ".feed_forward.output_dense", f)
        return F.layer_norm(x, (d,), P[pre + ".final_layer_norm.weight"], P[pre + ".final_layer_norm.bias"], 1e-6)

    def time_context(pre, x):
        h = ln_channels(pre + ".red_dim_conv.1", conv1d(P, pre + ".red_dim_conv.0", x))
        w = P[pre + ".tcm.0.conv.weight"]
        h = h + ln_channels(pre + ".tcm.0.norm", conv1d(P, pre + ".tcm.0.conv", h, padding=w.shape[-1] // 2,
                                                         groups=h.shape[1]))
        h = transformer(pre + ".tcm.1", h.transpose(1, 2)).transpose(1, 2)
        return x + conv1d(P, pre + ".exp_dim_conv", h)

    def conv2d(pre, x, **kw):
        return F.conv2d(x, P[pre + ".weight"], P[pre + ".bias"], **kw)

    x = mel[:, None]
    outs = [to1d(ln_channels("backbone.stem.1", conv2d("backbone.stem.0", x, padding=1)))]
    ch = c
    for i, s in enumerate(strides):
        pre = f"backbone.stage{i}"
        h = outs[0] if i == 0 else weighted(pre + ".0", outs)
        h = conv2d(pre + ".2", to2d(h, ch), stride=(s, 1))
        ch *= s
        for b in range(blocks[i]):
            q = f"{pre}.{3 + b}.conv_block"
            t = conv2d(q + ".dwconvs.0", h, padding=1, groups=ch // gdiv)
            h = h + conv2d(q + ".pwconv1", F.gelu(bn(P, q + ".norm", t, train)))
        outs.append(time_context(f"{pre}.{4 + blocks[i]}", to1d(h)))
    h = weighted("backbone.fin_wght1d", outs)
    alpha = torch.softmax(conv1d(P, "pool.linear2", torch.tanh(conv1d(P, "pool.linear1", h))), dim=2)
    mean = (alpha * h).sum(2)
    std = torch.sqrt(((alpha * h * h).sum(2) - mean * mean).clamp(min=1e-7))
    return lin("linear", bn(P, "bn", torch.cat([mean, std], 1), train))


def test_redimnet_matches_its_equations():
    gm, P = tiny(*REDIM, dtype=torch.float64)
    mel = torch.randn(3, 8, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for train in (True, False):
        (emb,) = check(gm, P, (mel,), redimnet_ref, train)
    assert emb.shape == (3, 6)


def test_redimnet_keeps_one_volume():
    """Every stage's 1D output has c f = C F channels: the 2D maps trade frequencies for channels."""
    g = resdsl.graph(os.path.join(STD, "redimnet.res"), network="redimnet_m")
    shapes = {k: tuple(p.shape) for k, p in g.param_names().items()}
    assert shapes["backbone.stage5.2.weight"] == (128, 64, 2, 1)          # c: 16 -> 32 -> 64 -> 128
    assert shapes["backbone.stage5.8.exp_dim_conv.weight"] == (72 * 16, 72 * 16 // 4, 1)
    assert shapes["backbone.fin_wght1d.w"] == (1, 7, 72 * 16, 1)
    assert shapes["linear.weight"] == (192, 2 * 72 * 16)


# ---------------------------------------------------------------- complex multidilated AEC network
AEC = ("aec_mdcnn.res", "AECMDCNN", {"c": 4, "blocks": 2, "layers": 3, "growth": 3, "bins": 12, "frames": 10})


def aec_ref(P, mic, far, train, blocks=2, layers=3):
    """Watcharasupat et al. 2022, with torch's complex tensors: complex convolutions with complex
    weights W_r + i W_i; pseudocomplex batch norm and ReLU on the real and imaginary parts; D2
    blocks whose layer l convolves the j-th earlier feature with dilation 2^j and sums; the dual
    mask S = M_d D + M_x X."""
    def cconv(pre, z, d=1):
        w = torch.complex(P[pre + ".wr.weight"], P[pre + ".wi.weight"])
        k = w.shape[-1]
        return F.conv2d(z, w, padding=d * (k - 1) // 2, dilation=d)

    def cbn(pre, z):  # the real parts take the first half of the norm's channels, the imaginary the second
        c = z.shape[1]
        own = {k: v for k, v in P.items() if k.startswith(pre + ".") and v.ndim == 1}
        re, im = ({k: v[s] for k, v in own.items()} for s in (slice(0, c), slice(c, 2 * c)))
        return torch.complex(bn(re, pre, z.real, train), bn(im, pre, z.imag, train))

    def crelu(z):
        return torch.complex(F.relu(z.real), F.relu(z.imag))

    d = torch.complex(mic[:, 0], mic[:, 1])
    x = torch.complex(far[:, 0], far[:, 1])
    h = cconv("stem", torch.stack([d, x], 1))
    for b in range(blocks):
        pre = f"blocks.{b}"
        zs = [h]
        for lay in range(layers):
            zs.append(sum(cconv(f"{pre}.layers.{lay}.convs.{j}", crelu(cbn(f"{pre}.layers.{lay}.norms.{j}", z)), 2 ** j)
                          for j, z in enumerate(zs)))
        h = h + cconv(pre + ".transition", crelu(cbn(pre + ".norm", torch.cat(zs[1:], 1))))
    m = cconv("head", crelu(cbn("norm", h)))
    s = m[:, 0] * d + m[:, 1] * x
    return torch.stack([s.real, s.imag], 1)


def test_aec_mdcnn_matches_its_equations():
    gm, P = tiny(*AEC)
    g = torch.Generator().manual_seed(0)
    mic, far = torch.randn(2, 2, 12, 10, generator=g), torch.randn(2, 2, 12, 10, generator=g)
    for train in (True, False):
        (s,) = check(gm, P, (mic, far), aec_ref, train)
    assert s.shape == (2, 2, 12, 10)


def test_aec_mdcnn_dilations_double_with_the_source_layer():
    g = resdsl.graph(os.path.join(STD, "aec_mdcnn.res"), network="aec_mdcnn")
    dil = {n.path: n.attrs["dilation"] for n in g.nodes if n.op == "conv" and ".layers.3.convs." in (n.path or "")}
    assert {p: d for p, d in dil.items() if p.startswith("blocks.0.")} == {
        f"blocks.0.layers.3.convs.{j}.{w}": 2 ** j for j in range(4) for w in ("wr", "wi")}, dil
    assert g.num_params() == 350_208


# ---------------------------------------------------------------- the torch file and ONNX
def _inputs(key):
    g = torch.Generator().manual_seed(5)
    if key == "speedy":
        return speedy_inputs()
    if key == "aec":
        return torch.randn(2, 2, 12, 10, generator=g), torch.randn(2, 2, 12, 10, generator=g)
    shape = {"apnet": (2, 6, 12), "redim": (3, 8, 20)}[key]
    return (torch.randn(*shape, generator=g),)


NETS = {"apnet": APNET, "speedy": SPEEDY, "redim": REDIM, "aec": AEC}


@pytest.mark.parametrize("key", sorted(NETS))
def test_torch_file_and_onnx_compute_what_the_tree_computes(key, tmp_path):
    import onnxruntime as ort
    f, net, params = NETS[key]
    path = os.path.join(STD, f)
    xs = _inputs(key)
    gm = resdsl.build(path, network=net, seed=0, **params)
    randomize(gm, seed=2, scale=0.1)
    gm.eval()
    with torch.no_grad():
        want = [y.numpy() for y in outputs(gm(*xs))]
    out = tmp_path / f"gen_{key}.py"
    out.write_text(resdsl.to_python(path, network=net, **params))
    mod = import_file(out)
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    m = fn(seed=0).eval()
    m.load_state_dict(gm.state_dict(), strict=True)
    with torch.no_grad():
        got = outputs(m(*xs))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    model = resdsl.to_onnx(path, network=net, seed=0, **params)
    s = ort.InferenceSession(model.SerializeToString())
    feeds = {i.name: x.numpy() for i, x in zip(s.get_inputs(), xs, strict=True)}
    # the ONNX file holds the network's initial weights (seed 0): compare with a fresh build
    ref = resdsl.build(path, network=net, seed=0, **params).eval()
    with torch.no_grad():
        want0 = [y.numpy() for y in outputs(ref(*xs))]
    for a, b in zip(s.run(None, feeds), want0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- atan2 (APNet's phase)
def test_atan2_in_every_quadrant_and_on_the_axes(tmp_path):
    """atan2 against torch.atan2 (and math.atan2) on all four quadrants, both axes and the
    origin: the module tree, the standalone file and ONNX (Atan with its quadrant fix-ups)."""
    import onnxruntime as ort
    src = "network n() {\n    input y: [N, D=9]\n    input x: [N, D=9]\n    atan2(y, x)\n}\n"
    y = torch.tensor([[1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 2.0, -3.0, 0.0], [0.5, -2.5, 3.0, -0.1, 1e-8, -1e-8, 7, 1, 0]])
    x = torch.tensor([[1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 0.0, 0.0, 0.0], [-4.0, -0.5, 1e-9, -1e-9, -1, -1, 2, 3, 5]])
    want = torch.tensor([[math.atan2(a, b) for a, b in zip(r, s)] for r, s in zip(y.tolist(), x.tolist())])
    torch.testing.assert_close(torch.atan2(y, x), want)
    torch.testing.assert_close(resdsl.build(src)(y, x), want)
    out = tmp_path / "gen_atan2.py"
    out.write_text(resdsl.to_python(src))
    assert "torch.atan2(" in out.read_text()
    torch.testing.assert_close(import_file(out).n()(y, x), want)
    s = ort.InferenceSession(resdsl.to_onnx(src).SerializeToString())
    got = s.run(None, {"y": y.numpy(), "x": x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)
