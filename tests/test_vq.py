"""Vector quantization (`vq`): the nearest codebook entry, the straight-through gradient, the
codebook and commitment loss; and SoundStream's residual VQ (stdlib/soundstream.res,
`ResidualVQ`) against the reference implementation of the same algorithm in EnCodec (pip
`encodec`, Defossez et al. 2022, which follows SoundStream's RVQ): the same codebooks loaded
strictly by name, equal outputs, equal gradients to the input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import resdsl

RVQ = """import soundstream
network rvq(stages: int = 3, codes: int = 16) {
    input z: [N, T=7, D=8]
    q, loss = ResidualVQ(stages, codes) as quantizer
    output q, loss = loss
}
"""


def test_vq_is_the_nearest_entry_with_a_straight_through_gradient():
    gm = resdsl.build("network n() {\n    input x: [N, L=9, D=4]\n    q, l = vq(6, beta=0.5) as m\n"
                      "    output q, loss = l\n}\n", seed=0)
    cb = gm.m.codebook
    with torch.no_grad():
        cb.normal_()
    x = torch.randn(3, 9, 4, requires_grad=True)
    q, loss = gm(x)
    near = cb[torch.cdist(x.reshape(-1, 4), cb).argmin(1)].reshape(x.shape)
    torch.testing.assert_close(q, near)
    torch.testing.assert_close(loss, F.mse_loss(near, x) * 1.5)
    r = torch.randn(3, 9, 4)
    (gx,) = torch.autograd.grad((q * r).sum(), x, retain_graph=True)
    torch.testing.assert_close(gx, r)  # straight-through: dq/dx = I
    (gc,) = torch.autograd.grad(loss, cb)  # the codebook learns from the loss only
    idx = torch.cdist(x.reshape(-1, 4), cb).argmin(1)
    want = torch.zeros_like(cb).index_add_(0, idx, 2 * (near - x).reshape(-1, 4).detach() / x.numel())
    torch.testing.assert_close(gc, want)


def _encodec_rvq(gm, stages, codes):
    from encodec.quantization.core_vq import ResidualVectorQuantization
    ref = ResidualVectorQuantization(num_quantizers=stages, dim=8, codebook_size=codes, kmeans_init=False,
                                     threshold_ema_dead_code=0)
    ours = gm.state_dict()
    theirs = ref.state_dict()
    mapping = {f"quantizer.layers.{i}.codebook": f"layers.{i}._codebook.embed" for i in range(stages)}
    assert set(ours) == set(mapping)  # every tensor of ours is a codebook of theirs
    assert {k for k in theirs if k.endswith(".embed")} == set(mapping.values())  # the rest: EMA statistics
    for k, v in ours.items():
        theirs[mapping[k]] = v.clone()
    ref.load_state_dict(theirs, strict=True)
    return ref


@pytest.mark.parametrize("train", [False, True])
def test_residual_vq_matches_encodec(train):
    stages, codes = 3, 16
    gm = resdsl.build(RVQ, seed=0)
    with torch.no_grad():
        for p in gm.parameters():
            p.normal_()
    ref = _encodec_rvq(gm, stages, codes)
    gm.train(train), ref.train(train)
    z = torch.randn(4, 7, 8, generator=torch.Generator().manual_seed(1))
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    q, loss = gm(z1)
    q_ref, idx, losses = ref(z2.transpose(1, 2))  # EnCodec is channels first: [N, D, T]
    torch.testing.assert_close(q, q_ref.transpose(1, 2))
    assert idx.shape == (stages, 4, 7)
    if train:  # EnCodec's loss is the commitment term; ours adds the codebook term (1 + beta)
        torch.testing.assert_close(loss, 1.25 * losses.sum())
        r = torch.randn(q.shape)
        (q * r).sum().backward()
        (q_ref.transpose(1, 2) * r).sum().backward()
        torch.testing.assert_close(z1.grad, z2.grad)


def test_each_stage_quantizes_the_residual_of_the_one_before():
    gm = resdsl.build(RVQ, seed=0).eval()
    z = torch.randn(2, 7, 8)
    cbs = [gm.get_parameter(f"quantizer.layers.{i}.codebook") for i in range(3)]
    r, total = z, 0
    for cb in cbs:
        q = cb[torch.cdist(r.reshape(-1, 8), cb).argmin(1)].reshape(r.shape)
        total, r = total + q, r - q
    with torch.no_grad():
        torch.testing.assert_close(gm(z)[0], total)
