"""The reading-list networks of graphs, graph ODEs, BERT and selective state spaces
(stdlib/xg_bot.res, gram_ode.res, csi_bert.res, res_vmamba.res).

XG-BoT is checked by parity with torch_geometric's GroupAddRev and GINConv and CSI-BERT by
parity with transformers' BertModel (strict state_dict, equal outputs and gradients); GRAM-ODE and
Res-VMamba, which no pip package implements, against direct PyTorch transcriptions of their
papers' equations (Res-VMamba's selective scan as Mamba's sequential S6 recurrence, a Python loop
over time steps), written here without resdsl, every parameter randomised first and read by
name. Each network also compiles to a standalone torch file and to ONNX, and both compute what
the module tree computes."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, assert_onnx_equals_build, assert_torch_file_equals_build, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")


def graphs(n=2, v=7, f=3, seed=0):
    """n random graphs of v nodes: features [n, v, f] and 0/1 symmetric adjacencies, no self loops."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, v, v, generator=g) < 0.4).float()
    a = ((a + a.transpose(1, 2)) > 0).float() * (1 - torch.eye(v))
    return torch.randn(n, v, f, generator=g), a


def grads_match(gm, y, P, want):
    """Backpropagate the same random weighting of both outputs; every parameter's gradient equal."""
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    (y * r).sum().backward()
    (want * r).sum().backward()
    for k, p in gm.named_parameters():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


# ---------------------------------------------------------------- XG-BoT
XGBOT = {"features": 3, "hidden": 12, "layers": 3, "groups": 3, "classes": 2}


def pyg_xgbot(features, hidden, layers, groups, classes):
    """XG-BoT's detector from torch_geometric's modules: GroupAddRev over GINConv blocks."""
    from torch_geometric.nn import GINConv, GroupAddRev

    class GINBlock(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm = torch.nn.LayerNorm(c)
            mlp = torch.nn.Sequential(torch.nn.Linear(c, c), torch.nn.ReLU(), torch.nn.Linear(c, c))
            self.conv = GINConv(mlp, train_eps=True)

        def reset_parameters(self):
            self.norm.reset_parameters()
            self.conv.reset_parameters()

        def forward(self, h, edge_index):
            return self.conv(F.relu(self.norm(h)), edge_index)

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.node_encoder = torch.nn.Linear(features, hidden)
            # disable=True: the same computation without the memory-saving autograd Function
            self.layers = torch.nn.ModuleList(
                GroupAddRev(GINBlock(hidden // groups), num_groups=groups, disable=True) for _ in range(layers))
            self.norm = torch.nn.LayerNorm(hidden)
            self.head = torch.nn.Linear(hidden, classes)

        def forward(self, x, adj):
            n, v, _ = x.shape
            # the batch as one block-diagonal graph; edge (j -> i) for adj[i, j] = 1
            b, i, j = adj.nonzero(as_tuple=True)
            edge_index = torch.stack([b * v + j, b * v + i])
            h = self.node_encoder(x.reshape(n * v, -1))
            for layer in self.layers:
                h = layer(h, edge_index)
            return self.head(F.relu(self.norm(h))).reshape(n, v, -1)

    return Detector()


def test_xg_bot_matches_torch_geometric():
    gm = resdsl.build(os.path.join(STD, "xg_bot.res"), network="XGBoT", seed=0, **XGBOT)
    state = randomize(gm, scale=0.4)
    ref = pyg_xgbot(**XGBOT)
    ref.load_state_dict(state, strict=True)
    x, adj = graphs(f=XGBOT["features"])
    y, want = gm(x, adj), ref(x, adj)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    grads_match(gm, y, dict(ref.named_parameters()), want)


# ---------------------------------------------------------------- CSI-BERT
CSIBERT = {"carriers": 6, "length": 12, "hidden": 16, "layers": 2, "heads": 2, "intermediate": 32}


def csi_inputs(n=2, length=12, carriers=6, seed=0):
    """CSI frames and arrival times: increasing, with irregular gaps (lost packets)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.cumsum(torch.rand(n, length, generator=g) * 3 + 0.5, dim=1) + 100.0
    return torch.randn(n, length, carriers, generator=g), t


def csi_bert_reference(carriers, length, hidden, layers, heads, intermediate):
    """CSI-BERT as its paper (and the authors' model.py) builds it: an MLP embedding of each CSI
    frame, the sinusoidal time embedding of the normalised timestamps, transformers' BertModel
    on inputs_embeds, and the token classifier."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=8, max_position_embeddings=length, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=intermediate)
    cfg._attn_implementation = "eager"

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(cfg, add_pooling_layer=False)
            self.emb = torch.nn.Sequential(torch.nn.Linear(carriers, 64), torch.nn.ReLU(),
                                           torch.nn.Linear(64, hidden))

        def time_embedding(self, t):
            lo, hi = t.min(dim=-1, keepdim=True)[0], t.max(dim=-1, keepdim=True)[0]
            t = (t - lo) / (hi - lo) * t.shape[-1]
            d = torch.arange(hidden)
            angle = t[:, :, None] / 10000 ** (d // 2 * 2 / hidden)
            return torch.where(d % 2 == 0, torch.sin(angle), torch.cos(angle))

        def forward(self, x, t):
            return self.bert(inputs_embeds=self.emb(x) + self.time_embedding(t)).last_hidden_state

    class TokenClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = Encoder()
            self.classifier = torch.nn.Sequential(torch.nn.Linear(hidden, 64), torch.nn.ReLU(),
                                                  torch.nn.Linear(64, carriers))

        def forward(self, x, t):
            return self.classifier(self.bert(x, t))

    return TokenClassifier()


def test_csi_bert_matches_transformers_bert():
    gm = resdsl.build(os.path.join(STD, "csi_bert.res"), network="CSIBERT", seed=0, **CSIBERT).eval()
    state = randomize(gm, scale=0.3)
    ref = csi_bert_reference(**CSIBERT).eval()
    missing, unexpected = ref.load_state_dict(state, strict=False)
    # CSI-BERT feeds inputs_embeds: BertModel's word embeddings exist but are never used
    assert missing == ["bert.bert.embeddings.word_embeddings.weight"] and unexpected == []
    x, t = csi_inputs()
    y, want = gm(x, t), ref(x, t)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    grads_match(gm, y, dict(ref.named_parameters()), want)


def test_csi_bert_time_embedding_reads_the_timestamps():
    """Frames that arrive at other times get other embeddings (the positions alone do not
    decide), and a shift of every timestamp changes nothing (min-max normalisation)."""
    gm = resdsl.build(os.path.join(STD, "csi_bert.res"), network="CSIBERT", seed=0, **CSIBERT).eval()
    x, t = csi_inputs()
    with torch.no_grad():
        y = gm(x, t)
        torch.testing.assert_close(gm(x, t + 1000.0), y, rtol=1e-4, atol=1e-4)
        t2 = t.clone()
        t2[:, 5:] += 7.0                                      # a burst of lost packets
        assert not torch.allclose(gm(x, t2), y, atol=1e-3)


# ---------------------------------------------------------------- Res-VMamba
VMAMBA = {"image": 16, "patch": 4, "dims": [4, 8], "depths": [1, 2], "state": 3, "rank": 2, "mlp_ratio": 2,
          "classes": 3}


def s6(u, delta, A, B, C, D):
    """Mamba's selective scan as its recurrence, one time step after the other:
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = C_t h_t + D u_t.
    u, delta [N, D, L]; A [D, S]; B, C [N, S, L]; D [D]."""
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        d = delta[:, :, t, None]
        h = torch.exp(d * A) * h + d * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    return torch.stack(ys, dim=-1) + D[:, None] * u


def ss2d(P, p, x, state, rank):
    n, hh, ww, _ = x.shape
    xi, z = F.linear(x, P[f"{p}.in_proj.weight"]).chunk(2, dim=-1)
    di = xi.shape[-1]
    xi = F.silu(F.conv2d(xi.permute(0, 3, 1, 2), P[f"{p}.conv2d.weight"], P[f"{p}.conv2d.bias"], padding=1,
                         groups=di))
    rows, cols = xi.flatten(2), xi.transpose(2, 3).flatten(2)
    ys = []
    for k, u in enumerate([rows, cols, rows.flip(-1), cols.flip(-1)]):            # cross scan
        dt, B, C = torch.split(torch.einsum("cd,ndl->ncl", P[f"{p}.x_proj_weight"][k], u), [rank, state, state], 1)
        delta = F.softplus(torch.einsum("dr,nrl->ndl", P[f"{p}.dt_projs_weight"][k], dt)
                           + P[f"{p}.dt_projs_bias"][k][:, None])
        A = -torch.exp(P[f"{p}.A_logs"].view(4, di, state)[k])
        ys.append(s6(u, delta, A, B, C, P[f"{p}.Ds"].view(4, di)[k]))
    col = (ys[1] + ys[3].flip(-1)).view(n, di, ww, hh).transpose(2, 3).flatten(2)   # cross merge
    y = (ys[0] + ys[2].flip(-1) + col).transpose(1, 2).reshape(n, hh, ww, di)
    y = F.layer_norm(y, (di,), P[f"{p}.out_norm.weight"], P[f"{p}.out_norm.bias"]) * F.silu(z)
    return F.linear(y, P[f"{p}.out_proj.weight"])


def res_vmamba_ref(P, x, image, patch, dims, depths, state, rank, mlp_ratio, classes):
    def ln(name, t, eps=1e-5):
        return F.layer_norm(t, t.shape[-1:], P[f"{name}.weight"], P[f"{name}.bias"], eps)

    h = F.conv2d(x, P["patch_embed.0.weight"], P["patch_embed.0.bias"], stride=patch).permute(0, 2, 3, 1)
    h = ln("patch_embed.2", h)
    for i in range(len(dims)):
        y = h
        for j in range(depths[i]):
            b = f"layers.{i}.blocks.{j}"
            y = y + ss2d(P, f"{b}.op", ln(f"{b}.norm", y, 1e-6), state, rank)
            m = F.gelu(F.linear(ln(f"{b}.norm2", y, 1e-6), P[f"{b}.mlp.fc1.weight"], P[f"{b}.mlp.fc1.bias"]))
            y = y + F.linear(m, P[f"{b}.mlp.fc2.weight"], P[f"{b}.mlp.fc2.bias"])
        if i < len(dims) - 1:
            d = f"layers.{i}.downsample"
            y = F.conv2d(y.permute(0, 3, 1, 2), P[f"{d}.1.weight"], P[f"{d}.1.bias"], stride=2)
            y = ln(f"{d}.3", y.permute(0, 2, 3, 1))
            # Res-VMamba's residual: max-pooled stage input through a 1x1 conv
            r = F.conv2d(F.max_pool2d(h.permute(0, 3, 1, 2), 2), P[f"res_proj.{i}.weight"], P[f"res_proj.{i}.bias"])
            y = y + r.permute(0, 2, 3, 1)
        h = y
    h = ln("classifier.norm", h).mean((1, 2))
    return F.linear(h, P["classifier.head.weight"], P["classifier.head.bias"])


def test_res_vmamba_matches_the_s6_recurrence():
    gm = resdsl.build(os.path.join(STD, "res_vmamba.res"), network="ResVMamba", seed=0, **VMAMBA)
    state = randomize(gm, scale=0.4)
    named = dict(gm.named_parameters())
    P = {k: v.clone().requires_grad_(k in named) for k, v in state.items()}
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y, want = gm(x), res_vmamba_ref(P, x, **VMAMBA)
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    grads_match(gm, y, P, want)


def test_res_vmamba_scan_is_causal_per_order():
    """The row-order scan's output at token t depends on tokens s <= t only: with the other three
    orders' B projections zeroed, changing the last token changes no earlier token's output of
    the SS2D core."""
    gm = resdsl.build(os.path.join(STD, "res_vmamba.res"), network="ResVMamba", seed=0, **VMAMBA)
    randomize(gm, scale=0.4)
    seen = []
    op = gm.get_submodule("layers.0.blocks.0.op")
    with torch.no_grad():
        op.x_proj_weight[1:] = 0.0                            # orders 1..3: B = C = dt-input = 0
        op.Ds.view(4, -1)[1:] = 0.0
    hook = op.get_submodule("out_norm").register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[:, :, 12:, 12:] += 3.0                                  # the last patch (row order: token 15)
    with torch.no_grad():
        gm(x), gm(x2)
    hook.remove()
    a, b = seen[0].reshape(1, 16, -1), seen[1].reshape(1, 16, -1)
    # the 3x3 depthwise conv spreads the change to tokens 10, 11, 14 (neighbours of 15)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 15], b[:, 15])


# ---------------------------------------------------------------- GRAM-ODE
GRAMODE = {"nodes": 5, "features": 2, "steps": 8, "horizon": 4, "channels": [4, 3, 4], "branches": 1, "blocks": 2,
           "heads": 2, "pred_heads": 2}


def gram_tcn(P, p, x, cin, channels, k=2):
    """Causal dilated convs (padded both sides, the extra right end chomped) and a residual."""
    y = x.permute(0, 3, 1, 2)
    h = y
    for i in range(len(channels)):
        pad = (k - 1) * 2 ** i
        h = F.conv2d(h, P[f"{p}.network.{i}.0.weight"], P[f"{p}.network.{i}.0.bias"], padding=(0, pad),
                     dilation=(1, 2 ** i))
        h = F.relu(h[:, :, :, :-pad])
    skip = y if cin == channels[-1] else F.conv2d(y, P[f"{p}.downsample.weight"], P[f"{p}.downsample.bias"])
    return F.relu(h + skip).permute(0, 2, 3, 1)


def gram_mhsa(P, p, x, heads):
    b, n, _ = x.shape
    q = F.linear(x, P[f"{p}.linear_q.weight"], P[f"{p}.linear_q.bias"])
    k = F.linear(x, P[f"{p}.linear_k.weight"], P[f"{p}.linear_k.bias"])
    v = F.linear(x, P[f"{p}.linear_v.weight"], P[f"{p}.linear_v.bias"])
    dk, dv = q.shape[-1] // heads, v.shape[-1] // heads
    q, k = (t.reshape(b, n, heads, dk).transpose(1, 2) for t in (q, k))
    v = v.reshape(b, n, heads, dv).transpose(1, 2)
    att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(dk), dim=-1)
    return (att @ v).transpose(1, 2).reshape(b, n, heads * dv)


def joint_time(x, w3, w4, kind):
    if kind == "node":                                      # x [b, n, t, c]
        left = torch.einsum("bntc,to->bnoc", x, w3).transpose(1, 3)
        right = torch.einsum("bntc,tp->bnpc", x, w4).transpose(1, 3)
        att = torch.sigmoid(left @ right.transpose(2, 3))
        return (att @ x.transpose(1, 3)).transpose(1, 3)
    left, right = torch.einsum("bnmt,to->bnmo", x, w3), torch.einsum("bnmt,tp->bnmp", x, w4)   # x [b, n, n, t]
    return x @ torch.sigmoid(left.transpose(2, 3) @ right)


def node_field(P, p, x, x0, g, w3, w4, beta=0.6):
    alpha = torch.sigmoid(P[f"{p}.alpha"])[None, :, None, None]
    w = (P[f"{p}.w"] * P[f"{p}.d"].clamp(0, 1)) @ P[f"{p}.w"].T
    w = (1 + beta) * w - beta * (w @ w.T) @ w
    return (alpha / 2 * torch.einsum("ij,kjlm->kilm", g, x) - x + joint_time(x, w3, w4, "node") - x
            + torch.einsum("ijkl,lm->ijkm", x, w) - x + x0)


def edge_field(P, p, e, e0, g, w3, w4):
    alpha = torch.sigmoid(P[f"{p}.alpha"])[None, :, None, None]
    return alpha / 2 * torch.einsum("ij,kjlm->kilm", g, e) - e + joint_time(e, w3, w4, "edge") - e + e0


def euler(field, x0, steps):
    """torchdiffeq's explicit Euler on t = 0, 1, ..., steps: the state after each unit step."""
    states, h = [], x0
    for _ in range(steps):
        h = h + field(h)
        states.append(h)
    return states


def gram_odeg(P, p, x, adj, heads):
    b, n, t, c = x.shape
    g = adj + P[f"{p}.spatial.mask"]
    w3, w4, v3, v4 = (P[f"{p}.time_{s}.{w}"] for s, w in [(12, "w3"), (12, "w4"), (1, "w3"), (1, "w4")])
    m = x.mean(dim=-1)
    edge = m.repeat(1, n, 1).reshape(b, n, n, t) + m.repeat(1, n, 1).reshape(b, n, n, t).transpose(1, 2)
    x0 = euler(lambda h: node_field(P, f"{p}.odeblock_1_1_node.odefunc", h, x, g, w3, w4), x, 1)[0]
    edge = euler(lambda h: edge_field(P, f"{p}.odeblock_1_1_edge.odefunc", h, edge, g, w3, w4), edge, 1)[0]
    x1 = gram_mhsa(P, f"{p}.att_12_4", x.reshape(b, n, t * c), heads).reshape(b, n, 4, c)
    local = []
    for i in range(4):
        xi = x1[..., i, :].unsqueeze(-2)
        states = euler(lambda h, i=i, xi=xi: node_field(P, f"{p}.odeblock_3_{i}_node.odefunc", h, xi, g, v3, v4),
                       xi, t // 4)
        local.append(torch.cat(states, dim=2))
    x1 = torch.stack(local, dim=-2).reshape(b, n, t, c)
    clip = P[f"{p}.clip"][0]
    x1 = torch.where(x0 + clip - x1 < 0, x0 + clip, x1)
    x1 = torch.where(x0 - clip - x1 > 0, x0 - clip, x1)
    xg = F.linear(x1, P[f"{p}.fc_final1.weight"], P[f"{p}.fc_final1.bias"])
    xl = F.linear(x0, P[f"{p}.fc_final2.weight"], P[f"{p}.fc_final2.bias"])
    xe = F.linear(edge.permute(0, 2, 3, 1), P[f"{p}.fc_edge.weight"], P[f"{p}.fc_edge.bias"])
    s = torch.sigmoid
    z = (xg * s(xl) + xg * s(xe) + xl * s(xe) + xl * s(xg) + xe * s(xl) + xe * s(xg)) / 6
    r = s(F.linear(x, P[f"{p}.fc_final3.weight"], P[f"{p}.fc_final3.bias"]))
    return F.relu(P[f"{p}.weights"][0] * r + P[f"{p}.weights"][1] * z)


def gram_ode_ref(P, x, asp, ase, nodes, features, steps, horizon, channels, branches, blocks, heads, pred_heads,
                 train):
    outs = []
    for kind, adj in [("sp", asp), ("se", ase)]:
        for b in range(branches):
            h = x
            for k in range(blocks):
                p = f"{kind}_blocks.{b}.{k}"
                h = gram_tcn(P, f"{p}.temporal1", h, features if k == 0 else channels[-1], channels)
                h = gram_odeg(P, f"{p}.odeg1", h, adj, heads)
                h = gram_tcn(P, f"{p}.temporal2", h, channels[-1], channels)
                stats = (None, None) if train else (P[f"{p}.batch_norm.running_mean"], P[f"{p}.batch_norm.running_var"])
                h = F.batch_norm(h, *stats, P[f"{p}.batch_norm.weight"], P[f"{p}.batch_norm.bias"], train)
            outs.append(h)
    y = torch.stack(outs, dim=-1)
    return gram_mhsa(P, "pred", y.reshape(y.shape[0], y.shape[1], -1), pred_heads)


def traffic(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    v, t, f = GRAMODE["nodes"], GRAMODE["steps"], GRAMODE["features"]
    a = torch.rand(v, v, generator=g)
    asp = a / a.sum(1, keepdim=True)                       # row-normalised road graph
    b = torch.rand(v, v, generator=g)
    return torch.randn(n, v, t, f, generator=g), asp, (b + b.T) / v


@pytest.mark.parametrize("train", [False, True])
def test_gram_ode_matches_its_equations(train):
    """Eval and train mode (the BatchNorm over the sensors; the TCN's dropout set to 0 here)."""
    gm = resdsl.build(os.path.join(STD, "gram_ode.res"), network="GRAMODE", seed=0, drop=0.0, **GRAMODE)
    state = randomize(gm, scale=0.3)
    gm.train(train)
    named = dict(gm.named_parameters())
    P = {k: v.clone().requires_grad_(k in named) for k, v in state.items()}
    xs = traffic()
    y, want = gm(*xs), gram_ode_ref(P, *xs, **GRAMODE, train=train)
    assert y.shape == (2, GRAMODE["nodes"], GRAMODE["horizon"])
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5)
    grads_match(gm, y, P, want)


# ---------------------------------------------------------------- every target
TARGETS = {
    "xg_bot": ("xg_bot.res", "XGBoT", XGBOT, lambda: graphs(f=XGBOT["features"])),
    "csi_bert": ("csi_bert.res", "CSIBERT", CSIBERT, lambda: csi_inputs()),
    "res_vmamba": ("res_vmamba.res", "ResVMamba", VMAMBA,
                   lambda: (torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)),)),
    "gram_ode": ("gram_ode.res", "GRAMODE", GRAMODE, lambda: traffic()),
}


@pytest.mark.parametrize("key", sorted(TARGETS))
def test_generated_torch_file_computes_the_same(key, tmp_path):
    f, net, params, inputs = TARGETS[key]
    assert_torch_file_equals_build(os.path.join(STD, f), net, params, inputs(), tmp_path, key)


@pytest.mark.parametrize("key", sorted(TARGETS))
def test_onnx_computes_the_same(key):
    f, net, params, inputs = TARGETS[key]
    assert_onnx_equals_build(os.path.join(STD, f), net, params, inputs())
