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

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, import_file, randomize

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
