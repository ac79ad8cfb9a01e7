"""The reading-list networks built around recurrent layers over residual features
(stdlib/rrnet.res, digit_string.res, dqn3d_rnn.res, oneshot_drug.res). No pip package implements
them (DeepChem's IterRefLSTMEmbedding is TensorFlow/Keras and not a dependency), so each is checked
against a direct PyTorch transcription of its paper's equations on a small configuration, written
here without resdsl and without torch.nn.LSTM/RNN (their equations are written out): outputs AND
gradients equal, every parameter randomised first and read by name, in training and evaluation
mode where batch norm or dropout makes them differ. RRNet follows the authors' released model
(github.com/Chan-0312/RRNet, not a package): its state_dict keys and shapes are checked too. Each network also compiles to a standalone torch file
and to ONNX, and both compute what the module tree computes."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, check_error, import_file, randomize

import resdsl

STD = os.path.join(ROOT, "stdlib")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def adjacency(m, v, seed, padded=1):
    """Random symmetric 0/1 adjacencies without self loops; the last `padded` atoms of each
    molecule are padding (no edges, mask 0)."""
    a = (torch.rand(m, v, v, generator=gen(seed)) < 0.4).float()
    a = torch.triu(a, 1)
    a = a + a.transpose(1, 2)
    a[:, v - padded:, :] = 0
    a[:, :, v - padded:] = 0
    mask = torch.ones(m, v, 1)
    mask[:, v - padded:] = 0
    return a, mask


def oneshot_inputs(s=4, q=3, v=6, f=5, seed=0):
    sa, sm = adjacency(s, v, seed + 1)
    qa, qm = adjacency(q, v, seed + 2)
    return {"support": torch.randn(s, v, f, generator=gen(seed + 3)), "support_adj": sa, "support_mask": sm,
            "labels": (torch.rand(s, 1, generator=gen(seed + 4)) < 0.5).float(),
            "query": torch.randn(q, v, f, generator=gen(seed + 5)), "query_adj": qa, "query_mask": qm}


# key: file, network, tiny parameters, inputs (a dict: name -> tensor)
TINY = {
    "rrnet": ("rrnet.res", "RRNet", {"length": 64, "widths": [2, 4], "segment": 8, "labels": 3, "fc": [10, 6]},
              lambda: {"x": torch.randn(3, 64, generator=gen(1))}),
    "ctc": ("digit_string.res", "ResCTC", {"height": 16, "width": 32, "widths": [4, 6, 8], "depth": 1,
                                           "hidden": 5},
            lambda: {"x": torch.randn(2, 1, 16, 32, generator=gen(2))}),
    "dqn": ("dqn3d_rnn.res", "DQN3DRNN", {"grid": 8, "channels": [3, 4], "feature": 10, "hidden": 6,
                                          "layers": 2, "classes": 3},
            lambda: {"voxels": (torch.rand(2, 1, 8, 8, 8, generator=gen(3)) < 0.3).float(),
                     "points": torch.randn(2, 7, 6, generator=gen(4))}),
    "oneshot": ("oneshot_drug.res", "OneShotResLSTM", {"atoms": 6, "atom_features": 5, "widths": [6, 8],
                                                       "dense": 7, "max_degree": 3, "steps": 2},
                oneshot_inputs),
}


def tiny(key):
    f, net, params, inputs = TINY[key]
    gm = resdsl.build(os.path.join(STD, f), network=net, seed=0, **params)
    P = randomize(gm, scale=0.3)
    named = dict(gm.named_parameters())
    return gm, {k: v.clone().requires_grad_(k in named) for k, v in P.items()}, inputs()


def outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def check(gm, P, xs, ref, train, seed=None):
    """Outputs and the gradients of every parameter equal, for one random cotangent per output.
    `seed`: reseed torch before each side, so that dropout draws the same masks on both."""
    gm.train(train)
    if seed is not None:
        torch.manual_seed(seed)
    ys = outputs(gm(**xs))
    if seed is not None:
        torch.manual_seed(seed)
    want = outputs(ref(P, xs, train))
    assert len(ys) == len(want)
    loss_ours, loss_ref = 0, 0
    for i, (y, w) in enumerate(zip(ys, want)):
        torch.testing.assert_close(y, w, rtol=1e-4, atol=1e-5)
        r = torch.randn(y.shape, generator=gen(7 + i))
        loss_ours = loss_ours + (y * r).sum()
        loss_ref = loss_ref + (w * r).sum()
    loss_ours.backward()
    loss_ref.backward()
    for k, p in gm.named_parameters():
        assert p.grad is not None, k
        torch.testing.assert_close(p.grad, P[k].grad, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    return ys


# ---------------------------------------------------------------- shared equations
def bn(P, name, x, train):
    if train:
        return F.batch_norm(x, None, None, P[f"{name}.weight"], P[f"{name}.bias"], True)
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"], P[f"{name}.weight"],
                        P[f"{name}.bias"], False)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh); c' = s(f) c + s(i) tanh(g); h' = s(o) tanh(c')."""
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm(P, name, x, bidirectional=False):
    """One LSTM layer over [N, L, D] from zero state (the reverse direction reads right to left)."""
    outs = []
    for sfx, rev in [("_l0", False), ("_l0_reverse", True)][:2 if bidirectional else 1]:
        w = [P[f"{name}.{k}{sfx}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        hid = w[1].shape[1]
        h = c = x.new_zeros(x.shape[0], hid)
        seq = [None] * x.shape[1]
        for t in (reversed(range(x.shape[1])) if rev else range(x.shape[1])):
            h, c = lstm_cell(x[:, t], h, c, *w)
            seq[t] = h
        outs.append(torch.stack(seq, 1))
    return torch.cat(outs, -1)


def basic_block(P, name, x, train, conv, stride=1):
    """ResNet's basic block: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""
    y = conv(x, P[f"{name}.conv1.weight"], stride=stride, padding=1)
    y = bn(P, f"{name}.bn1", y, train).relu()
    y = bn(P, f"{name}.bn2", conv(y, P[f"{name}.conv2.weight"], padding=1), train)
    s = x
    if f"{name}.downsample.0.weight" in P:
        s = bn(P, f"{name}.downsample.1", conv(x, P[f"{name}.downsample.0.weight"], stride=stride), train)
    return (y + s).relu()


def linear(P, name, x):
    return F.linear(x, P[f"{name}.weight"], P.get(f"{name}.bias"))


# ---------------------------------------------------------------- RRNet
def rrnet_ref(P, xs, train, widths=2, segment=8):
    x = xs["x"][:, None]
    for i in range(widths):  # the residual module: conv3(relu(conv3 x)) + s(x), then average pooling
        name = f"ResBlock_list.{i}.0"
        y = F.conv1d(x, P[f"{name}.ResBlock.0.weight"], P[f"{name}.ResBlock.0.bias"], padding=1).relu()
        y = F.conv1d(y, P[f"{name}.ResBlock.2.weight"], P[f"{name}.ResBlock.2.bias"], padding=1)
        if f"{name}.downsample.0.weight" in P:
            x = F.conv1d(x, P[f"{name}.downsample.0.weight"], P[f"{name}.downsample.0.bias"])
        x = F.avg_pool1d(y + x, 2)
    x = x.relu()
    seq = x.transpose(1, 2).reshape(x.shape[0], -1, segment)  # position-major, cut into segments
    h = torch.zeros(x.shape[0], segment)
    out = []
    for t in range(seq.shape[1]):  # the recurrent module: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        h = torch.tanh(seq[:, t] @ P["rnn.weight_ih_l0"].T + P["rnn.bias_ih_l0"] + h @ P["rnn.weight_hh_l0"].T
                       + P["rnn.bias_hh_l0"])
        out.append(h)
    f = torch.stack(out, 1).flatten(1)
    f = F.dropout(linear(P, "fc1.0", f).relu(), 0.3, train)
    f = F.dropout(linear(P, "fc2.0", f).relu(), 0.3, train)
    return linear(P, "mu", f), F.softplus(linear(P, "sigma.0", f))


@pytest.mark.parametrize("train", [True, False])
def test_rrnet_matches_its_equations(train):
    """In training, dropout draws the same masks on both sides (one seed, the same draws in order)."""
    gm, P, xs = tiny("rrnet")
    mu, sigma = check(gm, P, xs, rrnet_ref, train, seed=3)
    assert mu.shape == sigma.shape == (3, 3) and (sigma > 0).all()


def test_rrnet_state_dict_is_the_authors_layout():
    """The keys and shapes of the authors' released model (Chan-0312/RRNet, models/RRNet.py) with
    its training defaults: residual widths 4, 8, 16 over 7200 pixels, a 360-unit RNN, fc 256 and
    128, three labels; written here from reading that file."""
    want = {"rnn.weight_ih_l0": (360, 360), "rnn.weight_hh_l0": (360, 360), "rnn.bias_ih_l0": (360,),
            "rnn.bias_hh_l0": (360,), "fc1.0.weight": (256, 16 * 7200 // 8), "fc1.0.bias": (256,),
            "fc2.0.weight": (128, 256), "fc2.0.bias": (128,), "mu.weight": (3, 128), "mu.bias": (3,),
            "sigma.0.weight": (3, 128), "sigma.0.bias": (3,)}
    for i, (a, b) in enumerate([(1, 4), (4, 8), (8, 16)]):
        p = f"ResBlock_list.{i}.0."
        want |= {p + "ResBlock.0.weight": (b, a, 3), p + "ResBlock.0.bias": (b,), p + "ResBlock.2.weight": (b, b, 3),
                 p + "ResBlock.2.bias": (b,), p + "downsample.0.weight": (b, a, 1), p + "downsample.0.bias": (b,)}
    g = resdsl.graph(os.path.join(STD, "rrnet.res"), network="rrnet_sp")
    assert g.num_params() == sum(int(np.prod(s)) for s in want.values())
    gm = resdsl.build(os.path.join(STD, "rrnet.res"), network="rrnet_sp")
    assert {k: tuple(v.shape) for k, v in gm.state_dict().items()} == want


# ---------------------------------------------------------------- ResNet + BiLSTM + CTC
def ctc_ref(P, xs, train, stages=3):
    x = xs["x"]
    x = bn(P, "bn1", F.conv2d(x, P["conv1.weight"], padding=1), train).relu()
    for s in range(stages):
        x = basic_block(P, f"layer{s + 1}.0", x, train, F.conv2d)
        x = F.max_pool2d(x, 2) if s < 2 else F.max_pool2d(x, (2, 1))
    seq = x.mean(2).transpose(1, 2)  # the columns, left to right
    seq = lstm(P, "rnn2", lstm(P, "rnn1", seq, True), True)
    return linear(P, "fc", seq)


@pytest.mark.parametrize("train", [True, False])
def test_res_ctc_matches_its_equations(train):
    gm, P, xs = tiny("ctc")
    y = check(gm, P, xs, ctc_ref, train)[0]
    assert y.shape == (2, 8, 11)  # 8 columns, 10 digits and the blank


def test_res_ctc_trains_with_the_ctc_loss():
    """The per-column logits are what torch's CTC loss takes (time first, log-probabilities):
    a finite loss whose gradient reaches the first convolution."""
    gm, _, xs = tiny("ctc")
    y = gm(**xs)
    logp = y.log_softmax(-1).transpose(0, 1)  # [T, N, classes]
    targets = torch.tensor([[3, 1, 4], [1, 5, 9]])
    loss = F.ctc_loss(logp, targets, torch.full((2,), y.shape[1]), torch.tensor([3, 3]), blank=0)
    loss.backward()
    assert torch.isfinite(loss)
    assert gm.get_parameter("conv1.weight").grad.abs().sum() > 0


# ---------------------------------------------------------------- 3DCNN-DQN-RNN
def dqn_ref(P, xs, train, channels=2, layers=2):
    v = xs["voxels"]
    for i in range(channels):  # the 3D CNN over the eye window
        v = F.max_pool3d(F.conv3d(v, P[f"cnn.conv{i + 1}.weight"], P[f"cnn.conv{i + 1}.bias"], padding=1).relu(), 2)
    f = linear(P, "cnn.fc", v.flatten(1)).relu()
    q = linear(P, "dqn.fc2", linear(P, "dqn.fc1", f).relu())  # one Q-value per action
    p = xs["points"]  # h_0 = relu(W [p, f] + b), the window feature beside every point
    w = torch.cat([P["rnn.point.weight"], P["rnn.window.weight"]], 1)
    h = F.linear(torch.cat([p, f[:, None].expand(-1, p.shape[1], -1)], -1), w, P["rnn.point.bias"]).relu()
    for i in range(layers):  # the residual RNN: h_{i+1} = LSTM_i(h_i) + h_i
        h = lstm(P, f"rnn.lstm{i}", h) + h
    return q, linear(P, "rnn.head", h)


def test_dqn3d_rnn_matches_its_equations():
    gm, P, xs = tiny("dqn")
    q, logits = check(gm, P, xs, dqn_ref, True)
    assert q.shape == (2, 7) and logits.shape == (2, 7, 3)


# ---------------------------------------------------------------- one-shot: graph convs + IterRefLSTM
def graph_conv(P, name, h, adj, max_degree):
    """Duvenaud's graph convolution with weights per degree: W_d^self h_v + W_d^nbr sum_{u~v} h_u."""
    deg = adj.sum(-1).long()
    nb = adj @ h
    out = None
    for d in range(max_degree + 1):
        t = linear(P, f"{name}.self{d}", h)
        if d > 0:
            t = t + linear(P, f"{name}.nbr{d}", nb)
        t = t * (deg == d).unsqueeze(-1)
        out = t if out is None else out + t
    return out.relu()


def graph_pool(h, adj):
    """max over the atom and its neighbours, one atom at a time."""
    rows = []
    for i in range(h.shape[1]):
        nbrs = h.masked_fill(~(adj[:, i] > 0).unsqueeze(-1), float("-inf"))  # [M, V, C]
        rows.append(torch.maximum(h[:, i], nbrs.max(1).values))
    return torch.stack(rows, 1)


def graph_embed(P, h, adj, mask, widths=2, max_degree=3):
    for i in range(widths):
        h = graph_pool(graph_conv(P, f"embed.conv{i + 1}", h, adj, max_degree), adj)
    h = linear(P, "embed.dense", h).tanh()
    return (h * mask).sum(1).tanh()  # graph gather


def attend(q, keys, values):
    """softmax_j(cos(q_i, k_j)) values_j"""
    e = F.cosine_similarity(q[:, None], keys[None], dim=-1, eps=1e-12)
    return e.softmax(-1) @ values


def cell(P, name, x, h, c):
    return lstm_cell(x, h, c, P[f"{name}.ih.weight"], P[f"{name}.hh.weight"], P[f"{name}.ih.bias"],
                     P[f"{name}.hh.bias"])


def oneshot_ref(P, xs, train, steps=2):
    gs = graph_embed(P, xs["support"], xs["support_adj"], xs["support_mask"])
    fx = graph_embed(P, xs["query"], xs["query_adj"], xs["query_mask"])
    z, dz, cz = gs, torch.zeros_like(gs), torch.zeros_like(gs)
    dx, cx = torch.zeros_like(fx), torch.zeros_like(fx)
    for _ in range(steps):  # the iterative refinement (DeepChem's IterRefLSTMEmbedding)
        r = attend(z + dz, gs, gs)
        s = attend(fx + dx, z, z)
        dz, cz = cell(P, "support_lstm", torch.cat([dz, r], 1), dz, cz)
        dx, cx = cell(P, "test_lstm", torch.cat([dx, s], 1), dx, cx)
        z = r
    return attend(fx + dx, gs + dz, xs["labels"])  # y(x) = sum_i a(f(x), g(s_i)) y_i


def test_oneshot_matches_its_equations():
    gm, P, xs = tiny("oneshot")
    y = check(gm, P, xs, oneshot_ref, True)[0]
    assert y.shape == (3, 1)
    assert ((y > 0) & (y < 1)).all()  # an attention-weighted mean of 0/1 labels


def test_oneshot_padding_atoms_change_nothing():
    """A padding atom (no edges, mask 0) may hold any features: the embeddings ignore it."""
    gm, _, xs = tiny("oneshot")
    y = gm(**xs)
    xs2 = dict(xs)
    for k in ("support", "query"):
        xs2[k] = xs[k].clone()
        xs2[k][:, -1] = 100.0
    torch.testing.assert_close(gm(**xs2), y, rtol=0, atol=0)


def test_a_named_axis_mismatch_in_a_tensor_function_is_an_error():
    """`maximum(a, b)` of tensors whose axis names differ is a located error[shape] naming the
    function (it was an AttributeError from the elaborator)."""
    src = """network m() {
    input a: [N, V=4, F=3], b: [N, U=4, F=3]
    maximum(a, b)
}
"""
    err = check_error(src)
    assert err.kind == "shape" and "`maximum` lines up axis `V` with axis `U`" in err.message


# ---------------------------------------------------------------- the torch file and ONNX
@pytest.mark.parametrize("key", sorted(TINY))
def test_torch_file_and_onnx_compute_what_the_tree_computes(key, tmp_path):
    import onnxruntime as ort
    f, net, params, inputs = TINY[key]
    path = os.path.join(STD, f)
    xs = inputs()
    gm = resdsl.build(path, network=net, seed=0, **params).eval()
    randomize(gm, scale=0.3)
    sd = gm.state_dict()
    ys = [y.detach() for y in outputs(gm(**xs))]
    out = tmp_path / "gen.py"
    out.write_text(resdsl.to_python(path, network=net, **params))
    mod = import_file(out, "gen_seq_" + key)
    fn = next(getattr(mod, n) for n in dir(mod) if callable(getattr(mod, n)) and n.lower() == net.lower())
    m = fn(seed=0).eval()
    m.load_state_dict(sd, strict=True)
    for a, b in zip(outputs(m(**xs)), ys):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    model = resdsl.to_onnx(path, network=net, seed=0, **params)
    s = ort.InferenceSession(model.SerializeToString())
    s_ = resdsl.build(path, network=net, seed=0, **params).eval()  # ONNX holds the seed-0 weights
    want = [y.detach().numpy() for y in outputs(s_(**xs))]
    got = s.run(None, {i.name: xs[i.name].numpy() for i in s.get_inputs()})
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- the docs table
def test_the_docs_table_gives_the_counts_and_lines():
    """docs/architectures.md's "reading list (seq)" rows: each network's parameter count and its
    file's non-blank, non-comment lines are what the files give."""
    doc = Path(ROOT, "docs", "architectures.md").read_text(encoding="utf-8")
    section = doc.split("<!-- reading list (seq)", 1)[1].split("<!-- reading list (seq): end. -->", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "`.res`" not in r and "---" not in r]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        (f,) = re.findall(r"`([^`]+\.res)`", cells[2])
        counts = re.findall(r"(\w+) \((\d{1,3}(?:,\d{3})+)[ ;]", cells[1])  # "rrnet_sp (3,981,994 parameters; ..."
        assert counts, row
        for net, count in counts:
            assert resdsl.graph(os.path.join(STD, f), network=net).num_params() == int(count.replace(",", "")), net
        text = Path(STD, f).read_text(encoding="utf-8").splitlines()
        lines = sum(1 for t in text if t.strip() and not t.strip().startswith("#"))
        assert int(cells[4]) == lines, f
