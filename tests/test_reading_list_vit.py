"""The reading-list networks that mix convolutions and attention over images and sequences
(stdlib/moat.res, vit_resnas.res, htr_convtext.res, csi_4cast.res). No pip package implements
them (the authors' code is TensorFlow for MOAT and plain repositories for the others), so each is
checked against a direct PyTorch transcription of its paper's equations on a small configuration,
written here without resdsl: outputs AND gradients equal, train and eval, every parameter and
BatchNorm statistic randomised first and read by name. MOAT is also checked against the paper's
parameter counts. Each network compiles to a standalone torch file and to ONNX, and both
compute what the module tree computes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_file, randomize
from test_codegen_style import _ruff_clean

import resdsl

STD = os.path.join(ROOT, "stdlib")
G = torch.Generator().manual_seed(0)

# network file, network, small parameters, input
TINY = {
    "moat": ("moat.res", "MOAT", {"stem": [8, 8], "depths": [1, 2, 2, 1], "channels": [8, 16, 32, 64],
                                  "head_size": 8, "image": 64, "classes": 10},
             lambda: torch.randn(2, 3, 64, 64, generator=G)),
    "vit_resnas": ("vit_resnas.res", "ViTResNAS",
                   {"widths": [8, 16, 24], "heads": [[2], [2, 1], [3]], "head_dims": [4, 8, 8],
                    "hidden": [[16], [32, 24], [48]], "mid": 4, "image": 56, "classes": 5},
                   lambda: torch.randn(2, 3, 56, 56, generator=G)),
    # the FDD form (subcarrier correction layers, "add", ReLU) and the TDD form (none; tanh, multiply
    # would be its subcarrier layers); 5 subcarriers, 6 frames in, 2 out; dropout 0 to compare training
    "csi_fdd": ("csi_4cast.res", "CSI4CAST",
                {"hist": 6, "pred": 2, "subcarriers": 5, "model": 16, "temporal_layers": 3, "temporal_hidden": 8,
                 "u2d": True, "sub_layers": 3, "sub_hidden": 12, "sub_act": "relu", "sub_op": "add",
                 "res_layers": 2, "res_dim": 8, "res_groups": 4, "ca_ratio": 2, "layers": 2, "heads": 2,
                 "hidden": 24, "drop": 0.0, "tf_drop": 0.0},
                lambda: torch.randn(3, 6, 10, generator=G) * 2 + 0.5),
    "csi_tdd": ("csi_4cast.res", "CSI4CAST",
                {"hist": 6, "pred": 2, "subcarriers": 5, "model": 16, "denoiser_filters": 2, "temporal_layers": 2,
                 "temporal_hidden": 8, "res_layers": 1, "res_dim": 8, "res_groups": 2, "ca_ratio": 1,
                 "layers": 1, "heads": 4, "hidden": 24, "drop": 0.0, "tf_drop": 0.0},
                lambda: torch.randn(3, 6, 10, generator=G) * 2 + 0.5),
    # 64 x 32 lines: 8 frames, halved to 4 after the first of 3 blocks, restored after the second
    "htr": ("htr_convtext.res", "HTRConvText",
            {"classes": 7, "dim": 16, "depth": 3, "heads": 2, "mlp_ratio": 2.0, "kernel": 3, "down_after": 1,
             "up_after": 2, "max_rel": 8, "drop": 0.0, "mv_head_dim": 4, "height": 64, "width": 32},
            lambda: torch.randn(2, 1, 64, 32, generator=G)),
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
    for k, p in gm.named_parameters():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def bn(P, name, x, train, eps):
    # copies of the running statistics: training mode updates them, and P must stay as loaded
    return F.batch_norm(x, P[name + ".running_mean"].clone(), P[name + ".running_var"].clone(),
                        P[name + ".weight"], P[name + ".bias"], train, 0.1, eps)


def conv(P, name, x, bias=True, **kw):
    return F.conv2d(x, P[name + ".weight"], P[name + ".bias"] if bias else None, **kw)


def linear(P, name, x):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"])


def ln(P, name, x, eps):
    return F.layer_norm(x, x.shape[-1:], P[name + ".weight"], P[name + ".bias"], eps)


# ---------------------------------------------------------------- MOAT (count, equations)
# Yang et al. 2022, Table 2 (ImageNet-1K at 224): MOAT-0 27.8M parameters; Table 6: tiny-MOAT-0 3.4M.
@pytest.mark.parametrize("network,millions", [("moat_0", 27.8), ("tiny_moat_0", 3.4)])
def test_moat_counts_equal_the_paper(network, millions):
    assert round(resdsl.graph(os.path.join(STD, "moat.res"), network).num_params() / 1e6, 1) == millions


def moat_lookup(s):
    """deeplab2's one-hot reindexing of one axis: lookup[i, x, v] = 1 where v = x - i + s - 1."""
    m = torch.zeros(s, s, 2 * s - 1)
    for i in range(s):
        for x in range(s):
            m[i, x, x - i + s - 1] = 1.0
    return m


def moat_attention(P, n, x, head_size):
    """Multi-head self-attention over all positions of x [B, H, W, C] with the 2-D relative
    position embedding reindexed by two einsum lookups (the paper's Eq. 3 and the authors' code)."""
    B, H, W, C = x.shape
    heads = C // head_size
    t = x.reshape(B, H * W, C)
    q = linear(P, n + ".q", t).reshape(B, H * W, heads, head_size) * head_size ** -0.5
    k = linear(P, n + ".k", t).reshape(B, H * W, heads, head_size)
    v = linear(P, n + ".v", t).reshape(B, H * W, heads, head_size)
    logits = torch.einsum("bsnk,btnk->bnst", q, k)
    rel = torch.einsum("nhw,ixh->nixw", P[n + ".relative_position_embedding"], moat_lookup(H))
    rel = torch.einsum("nixw,jyw->nijxy", rel, moat_lookup(W)).reshape(heads, H * W, H * W)
    probs = torch.softmax(logits + rel, dim=-1)
    out = torch.einsum("bnst,btnk->bsnk", probs, v).reshape(B, H * W, C)
    return linear(P, n + ".o", out).reshape(B, H, W, C)


def moat_mbconv(P, n, x, out, stride, se, train):
    short = x
    if stride > 1:
        short = F.avg_pool2d(short, 2, stride)
    if x.shape[1] != out:
        short = conv(P, n + ".shortcut.shortcut_conv", short)
    h = bn(P, n + ".pre_norm", x, train, 1e-3)
    h = F.gelu(bn(P, n + ".expand_norm", conv(P, n + ".expand_conv", h, bias=False), train, 1e-3))
    h = conv(P, n + ".depthwise_conv", h, bias=False, stride=stride, padding=1, groups=h.shape[1])
    h = F.gelu(bn(P, n + ".depthwise_norm", h, train, 1e-3))
    if se:
        s = F.silu(conv(P, n + ".se.reduce_conv2d", h.mean((2, 3), keepdim=True)))
        h = h * torch.sigmoid(conv(P, n + ".se.expand_conv2d", s))
    return short + conv(P, n + ".shrink_conv", h)


def moat_ref(P, x, train, depths=(1, 2, 2, 1), channels=(8, 16, 32, 64), head_size=8):
    h = F.gelu(bn(P, "stem.norm_0", conv(P, "stem.conv_0", x, stride=2, padding=1), train, 1e-3))
    h = conv(P, "stem.conv_1", h, padding=1)
    for b, (depth, out) in enumerate(zip(depths, channels)):
        for i in range(depth):
            n = f"blocks.{b}.{i}"
            stride = 2 if i == 0 else 1
            h = moat_mbconv(P, n, h, out, stride, b < 2, train)
            if b >= 2:  # MOAT block: the attention follows the MBConv, in place of the MLP
                t = ln(P, n + ".attention_norm", h.permute(0, 2, 3, 1), 1e-5)
                h = h + moat_attention(P, n + ".attention", t, head_size).permute(0, 3, 1, 2)
    h = ln(P, "final_layer_norm", h.mean((2, 3)), 1e-5)
    return linear(P, "logits_head", h)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_moat_matches_its_equations(train):
    gm, P, x = tiny("moat")
    check(gm, P, x, moat_ref, train)


# ---------------------------------------------------------------- ViT-ResNAS (equations)
def vit_block(P, n, t, heads, head_dim):
    B, N, C = t.shape
    h = ln(P, n + ".norm1", t, 1e-6)
    qkv = linear(P, n + ".attn.qkv", h).reshape(B, N, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = torch.softmax((q @ k.transpose(-2, -1)) * head_dim ** -0.5, dim=-1)
    t = t + linear(P, n + ".attn.proj", (a @ v).transpose(1, 2).reshape(B, N, heads * head_dim))
    h = ln(P, n + ".norm2", t, 1e-6)
    return t + linear(P, n + ".mlp.fc2", F.gelu(linear(P, n + ".mlp.fc1", h)))


def residual_spatial_reduction(P, n, t, size, out):
    """LN; patch tokens: 3x3 conv with stride 2 plus a new position embedding; class token: a
    linear; skip: the class token and the 2x2-average-pooled patch tokens, zero-padded to `out`."""
    B, N, C = t.shape
    grid = lambda p: p.transpose(1, 2).reshape(B, C, size, size)  # noqa: E731
    skip_patches = F.avg_pool2d(grid(t[:, 1:]), 2).flatten(2).transpose(1, 2)
    skip = torch.cat([t[:, :1], skip_patches], dim=1)
    skip = torch.cat([skip, skip.new_zeros(B, skip.shape[1], out - C)], dim=2)
    h = ln(P, n + ".norm", t, 1e-6)
    patches = conv(P, n + ".patch_reduce", grid(h[:, 1:]), stride=2, padding=1).flatten(2).transpose(1, 2)
    patches = patches + P[n + ".pos_embed"]
    cls = linear(P, n + ".token_transform", h[:, :1])
    return torch.cat([cls, patches], dim=1) + skip


def vit_resnas_ref(P, x, train, widths=(8, 16, 24), heads=((2,), (2, 1), (3,)), head_dims=(4, 8, 8), patch=14):
    def cba(n, h, stride=1):
        return F.relu(bn(P, n + ".bn", conv(P, n + ".conv", h, bias=False, stride=stride, padding=1), train, 1e-5))

    h = cba("patch_embed.conv1", x, 2)
    h = cba("patch_embed.conv3", cba("patch_embed.conv2", h)) + h
    h = conv(P, "patch_embed.conv_proj", h, stride=patch // 2)
    size = h.shape[2]
    t = h.flatten(2).transpose(1, 2)
    t = torch.cat([P["tokens"].expand(t.shape[0], -1, -1), t], dim=1) + P["pos_embed"]
    i = 0
    for s, width in enumerate(widths):
        if s > 0:
            t = residual_spatial_reduction(P, f"blocks.{i}", t, size, width)
            size //= 2
            i += 1
        for nh in heads[s]:
            t = vit_block(P, f"blocks.{i}", t, nh, head_dims[s])
            i += 1
    return linear(P, "cls_head", ln(P, "norm", t[:, 0], 1e-6))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_vit_resnas_matches_its_equations(train):
    gm, P, x = tiny("vit_resnas")
    check(gm, P, x, vit_resnas_ref, train)


def test_vit_resnas_block_numbering_follows_the_authors_code():
    # vit_resnas_tiny: 5 blocks, reduction (blocks.5), 6 blocks, reduction (blocks.12), 5 blocks
    names = resdsl.graph(os.path.join(STD, "vit_resnas.res"), "vit_resnas_tiny").param_names()
    assert tuple(names["blocks.5.patch_reduce.weight"].shape) == (352, 176, 3, 3)
    assert tuple(names["blocks.12.token_transform.weight"].shape) == (704, 352)
    assert tuple(names["blocks.6.attn.qkv.weight"].shape) == (3 * 10 * 48, 352)
    assert tuple(names["blocks.17.mlp.fc1.weight"].shape) == (2560, 704)
    assert "blocks.18.norm1.weight" not in names
    assert tuple(names["pos_embed"].shape) == (1, 257, 176)


# ---------------------------------------------------------------- CSI-4CAST (equations)
def csi_mlp(P, n, x, layers, act):
    """The authors' MLP: Linear, then (ReLU, Linear) for each further layer; the output activation."""
    linears = [0] + [3 * i + 3 for i in range(layers - 2)] + [3 * layers - 3] if layers > 2 else [0]
    for j in linears[:-1]:
        x = F.relu(linear(P, f"{n}.{j}", x))
    x = linear(P, f"{n}.{linears[-1]}", x)
    return {"none": x, "relu": F.relu(x), "tanh": torch.tanh(x)}[act]


def csi_arl(P, n, x, layers, act, op):
    """Adaptive correction layer: the MLP's output alone, or added to / multiplying the input; LN."""
    out = csi_mlp(P, n + ".mlp.mlp", x, layers, act)
    out = {"none": out, "add": out + x, "multiply": out * x}[op]
    return ln(P, n + ".layernorm", out, 1e-5)


def shuffle_block(P, n, x, groups, train):
    B, C, H, W = x.shape
    rs = F.relu(bn(P, n + ".g_pw_conv_in_bn", conv(P, n + ".g_pw_conv_in", x, bias=False, groups=groups), train, 1e-5))
    rs = rs.view(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)  # channel shuffle
    rs = bn(P, n + ".dw_conv_bn", conv(P, n + ".dw_conv", rs, bias=False, padding=1, groups=C), train, 1e-5)
    rs = bn(P, n + ".g_pw_conv_out_bn", conv(P, n + ".g_pw_conv_out", rs, bias=False, groups=groups), train, 1e-5)
    gate = conv(P, n + ".ca.se.1", rs.mean((2, 3), keepdim=True), bias=False)
    gate = torch.sigmoid(conv(P, n + ".ca.se.3", F.relu(gate), bias=False))
    return F.relu(x + gate * rs)


def csi_ref(key):
    c = TINY[key][2]

    def ref(P, x, train):
        B, L, D = x.shape
        # 1. the denoiser, a residual: x minus the conv encoder-decoder of the [2, L, K] picture
        d = x.reshape(B, L, D // 2, 2).permute(0, 3, 1, 2)
        f = c.get("denoiser_filters", 3)
        for part in ("encoder", "decoder"):
            for i in range(f - 1):
                n = f"denoiser.{part}.{i}"
                d = F.relu(bn(P, n + ".1", conv(P, n + ".0", d, padding=1), train, 1e-5))
        x = x - d.permute(0, 2, 3, 1).reshape(B, L, D)
        # 2. standardised by the batch's statistics
        mean, std = x.mean(), x.std(unbiased=False).clamp(min=1e-6)
        x = (x - mean) / std
        # 3. the delay domain (inverse FFT over the subcarriers) and the correction layers
        delay = torch.view_as_real(torch.fft.ifft(torch.complex(x[..., 0::2], x[..., 1::2]), dim=2)).reshape(B, L, D)
        freq = csi_arl(P, "arl.temporal_proj_freq", x.transpose(1, 2), c["temporal_layers"], "none", "none")
        delay = csi_arl(P, "arl.temporal_proj_delay", delay.transpose(1, 2), c["temporal_layers"], "none", "none")
        freq, delay = freq.transpose(1, 2), delay.transpose(1, 2)
        if c.get("u2d"):
            freq = csi_arl(P, "arl.subcarrier_proj_freq", freq, c["sub_layers"], c["sub_act"], c["sub_op"])
            delay = csi_arl(P, "arl.subcarrier_proj_delay", delay, c["sub_layers"], c["sub_act"], "multiply")

        # 4. ShuffleNet blocks in a conv sandwich per domain, summed; token embedding; a linear over time
        def branch(n, h):
            h = conv(P, n + ".0", h.reshape(B, L, D // 2, 2).permute(0, 3, 1, 2), padding=1)
            for i in range(c["res_layers"]):
                h = shuffle_block(P, f"{n}.{i + 1}", h, c["res_groups"], train)
            return conv(P, f"{n}.{c['res_layers'] + 1}", h, padding=1)

        e = branch("embedding.RB_delay", delay) + branch("embedding.RB_freq", freq)
        e = e.permute(0, 2, 3, 1).reshape(B, L, D)
        n = "embedding.embedding.value_embedding.tokenConv"
        e = F.conv1d(F.pad(e.transpose(1, 2), (1, 1), mode="circular"), P[n + ".weight"], P[n + ".bias"]).transpose(1, 2)
        d_model = c["model"]
        pe = torch.zeros(L, d_model)
        div = (torch.arange(0, d_model, 2).float() * -(np.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(torch.arange(L).float()[:, None] * div)
        pe[:, 1::2] = torch.cos(torch.arange(L).float()[:, None] * div)
        e = linear(P, "embedding.predict_linear_pre", (e + pe).transpose(1, 2)).transpose(1, 2)
        # 5. torch's post-norm transformer encoder layers, their weights taken from P by name
        layer = torch.nn.TransformerEncoderLayer(d_model, c["heads"], c["hidden"], dropout=0.0, batch_first=True)
        for i in range(c["layers"]):
            n = f"transformer.transformer.layers.{i}."
            own = {k[len(n):]: v for k, v in P.items() if k.startswith(n)}
            e = torch.func.functional_call(layer.train(train), own, (e,))
        y = linear(P, "mlp.pred_to_data", e)
        y = linear(P, "mlp.hist_to_pred", y.transpose(1, 2)).transpose(1, 2)
        return y * std + mean

    return ref


@pytest.mark.parametrize("key", ["csi_fdd", "csi_tdd"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_csi_4cast_matches_its_equations(key, train):
    gm, P, x = tiny(key)
    check(gm, P, x, csi_ref(key), train)


# ---------------------------------------------------------------- HTR-ConvText (equations)
def sincos_2d(dim, nh, nw):
    """The authors' get_2d_sincos_pos_embed (MAE's): the first half of the features from the
    column coordinate, the second from the row, each [sin, cos] of pos * 10000 ** (-k / (dim / 4))."""
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gw, gh = np.meshgrid(np.arange(nw, dtype=np.float32), np.arange(nh, dtype=np.float32))
    return torch.tensor(np.concatenate([one(dim // 2, gw), one(dim // 2, gh)], axis=1), dtype=torch.float32)


def mobilevit(P, n, x, head_dim, train):
    """MobileViT's block (ml-cvnets, v1) without fusion: local 3x3 and 1x1 convs, unfold into 2x2
    patches, the position embedding, a pre-norm transformer layer, LN, fold, 1x1 conv-BN-SiLU."""
    B, C, H, W = x.shape
    fm = conv(P, n + ".local_rep.conv_3x3.block.conv", x, bias=False, padding=1)
    fm = F.silu(bn(P, n + ".local_rep.conv_3x3.block.norm", fm, train, 1e-5))
    fm = conv(P, n + ".local_rep.conv_1x1.block.conv", fm, bias=False)
    nh, nw = H // 2, W // 2
    t = fm.reshape(B * C * nh, 2, nw, 2).transpose(1, 2).reshape(B, C, nh * nw, 4)  # ml-cvnets' unfolding
    t = t.transpose(1, 3).reshape(B * 4, nh * nw, C) + sincos_2d(C, nh, nw)
    g = n + ".global_rep.0."
    h = ln(P, g + "pre_norm_mha.0", t, 1e-5)
    heads = C // head_dim
    qkv = linear(P, g + "pre_norm_mha.1.qkv_proj", h).reshape(B * 4, nh * nw, 3, heads, head_dim).transpose(1, 3)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B*4, heads, N, d]
    a = torch.softmax((q * head_dim ** -0.5) @ k.transpose(-1, -2), dim=-1)
    t = t + linear(P, g + "pre_norm_mha.1.out_proj", (a @ v).transpose(1, 2).reshape(B * 4, nh * nw, C))
    h = ln(P, g + "pre_norm_ffn.0", t, 1e-5)
    t = t + linear(P, g + "pre_norm_ffn.4", F.silu(linear(P, g + "pre_norm_ffn.1", h)))
    t = ln(P, n + ".global_rep.1", t, 1e-5)
    fm = t.reshape(B, 4, nh * nw, C).transpose(1, 3).reshape(B * C * nh, nw, 2, 2).transpose(1, 2)  # folding
    fm = fm.reshape(B, C, H, W)
    return F.silu(bn(P, n + ".conv_proj.block.norm", conv(P, n + ".conv_proj.block.conv", fm, bias=False), train, 1e-5))


def convtext_block(P, n, x, heads, max_rel):
    """x = LN(x + g * attn(x)); x = LN(x + g * FFN(x) / 2); x = LN(x + g * Conv(x)); x = LN(x + g * FFN(x) / 2)."""
    B, N, C = x.shape
    qkv = linear(P, n + ".attn.qkv", x).reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    coords = torch.arange(N)
    rel = (coords[:, None] - coords[None, :]).clamp(-max_rel + 1, max_rel - 1) + max_rel - 1
    bias = F.embedding(rel, P[n + ".attn.rel_pos_bias.bias.weight"]).permute(2, 0, 1).unsqueeze(0)
    a = torch.softmax((q @ k.transpose(-2, -1)) * (C // heads) ** -0.5 + bias, dim=-1)
    y = linear(P, n + ".attn.proj", (a @ v).transpose(1, 2).reshape(B, N, C))
    x = ln(P, n + ".postln_attn", x + P[n + ".ls_attn.gamma"] * y, 1e-6)

    def ffn(m, h):
        return linear(P, m + ".lin2", F.silu(linear(P, m + ".lin1", h)))

    x = ln(P, n + ".postln_ffn1", x + P[n + ".ls_ffn1.gamma"] * (0.5 * ffn(n + ".ffn1", x)), 1e-6)
    z = x.transpose(1, 2)
    z = F.silu(F.conv1d(z, P[n + ".conv.pw1.weight"], P[n + ".conv.pw1.bias"]))
    w = P[n + ".conv.dw.weight"]
    z = F.conv1d(z, w, P[n + ".conv.dw.bias"], padding=w.shape[-1] // 2, groups=C)
    z = F.silu(F.group_norm(z, 1, P[n + ".conv.gn.weight"], P[n + ".conv.gn.bias"], 1e-5))
    z = F.conv1d(z, P[n + ".conv.pw2.weight"], P[n + ".conv.pw2.bias"]).transpose(1, 2)
    x = ln(P, n + ".postln_conv", x + P[n + ".ls_conv.gamma"] * z, 1e-6)
    return ln(P, n + ".postln_ffn2", x + P[n + ".ls_ffn2.gamma"] * (0.5 * ffn(n + ".ffn2", x)), 1e-6)


def htr_ref(P, x, train):
    c = TINY["htr"][2]
    d, pe = c["dim"], "patch_embed."
    h = F.relu(bn(P, pe + "bn1", conv(P, pe + "conv1", x, bias=False, stride=(2, 1), padding=1), train, 1e-5))
    h = F.max_pool2d(h, 3, (2, 1), 1)
    for li, stride in enumerate([(2, 1), (2, 2), (2, 2)], 1):
        for bi in range(2):  # BasicBlocks; the first one of a stage strides and has a projection
            n = f"{pe}layer{li}.{bi}"
            s = stride if bi == 0 else (1, 1)
            out = F.relu(bn(P, n + ".bn1", conv(P, n + ".conv1", h, bias=False, stride=s, padding=1), train, 1e-5))
            out = bn(P, n + ".bn2", conv(P, n + ".conv2", out, bias=False, padding=1), train, 1e-5)
            if bi == 0:
                h = bn(P, n + ".downsample.1", conv(P, n + ".downsample.0", h, bias=False, stride=s), train, 1e-5)
            h = F.relu(out + h)
        h = mobilevit(P, f"{pe}mobilevit_block{li}", h, c["mv_head_dim"], train)
    h = F.max_pool2d(h, 3, (2, 1), 1)
    t = h.reshape(h.shape[0], d, -1).permute(0, 2, 1)
    for i in range(c["depth"]):
        t = convtext_block(P, f"blocks.{i}", t, c["heads"], c["max_rel"])
        if i + 1 == c["down_after"]:
            skip = t
            z = F.conv1d(t.transpose(1, 2), P["down1.dw.weight"], stride=2, padding=1, groups=d)
            t = F.conv1d(z, P["down1.pw.weight"], P["down1.pw.bias"]).transpose(1, 2)
        if i + 1 == c["up_after"]:
            z = F.interpolate(t.transpose(1, 2), size=skip.shape[1], mode="nearest")
            t = F.conv1d(z, P["up1.proj.weight"], P["up1.proj.bias"]).transpose(1, 2) + skip
    return linear(P, "head", ln(P, "norm", t, 1e-6))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_htr_convtext_matches_its_equations(train):
    gm, P, x = tiny("htr")
    check(gm, P, x, htr_ref, train)


def test_htr_convtext_gives_one_frame_per_four_columns():
    g = resdsl.graph(os.path.join(STD, "htr_convtext.res"), "htr_convtext")
    assert [a.size for a in g.outputs[0].shape[1:]] == [128, 80]  # 512 columns -> 128 CTC frames, 80 classes


# ---------------------------------------------------------------- the torch file and ONNX
@pytest.mark.parametrize("key", sorted(TINY))
def test_torch_file_and_onnx_compute_what_the_tree_computes(key, tmp_path):
    import onnxruntime as ort
    f, net, params, inputs = TINY[key]
    path = os.path.join(STD, f)
    x = inputs()
    gm = resdsl.build(path, network=net, seed=0, **params).eval()
    y = gm(x).detach()
    out = tmp_path / "gen.py"
    out.write_text(resdsl.to_python(path, network=net, **params))
    mod = import_file(out, f"{key}_gen")
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    m = fn(seed=0).eval()
    assert list(m.state_dict()) == list(gm.state_dict())
    torch.testing.assert_close(m(x), y, rtol=0, atol=0)
    _ruff_clean(tmp_path)  # init_weights' long isinstance / type(m) tests wrapped as ruff format does
    model = resdsl.to_onnx(path, network=net, seed=0, **params)
    s = ort.InferenceSession(model.SerializeToString())
    got = s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, y.numpy(), rtol=1e-4, atol=1e-5)
