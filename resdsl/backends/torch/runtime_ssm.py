"""The torch function of `selective_scan` (resdsl/ir/ops/ssm.py): Mamba's selective scan (S6).

Self-contained (it needs only ``torch``): the torch target copies its source into the
standalone ``.py`` file it writes, as it does for :mod:`runtime`'s classes.
"""

import torch


def selective_scan(u, delta, a, b, c, d=None, delta_bias=None, delta_softplus=False):
    """Mamba's selective scan (S6), as mamba_ssm's selective_scan_fn(u, delta, A, B, C, D, ...)
    computes it.

    u, delta [N, D, L], a [D, S], b, c [N, S, L] or [N, G, S, L] (G groups of D/G channels),
    d, delta_bias [D] or None. From h_0 = 0, per channel and state element:
        delta = softplus(delta + delta_bias)  (the softplus only if delta_softplus)
        h_t = exp(delta_t a) h_{t-1} + delta_t b_t u_t,  y_t = sum_s c_t h_t + d u_t.
    Returns y [N, D, L]. A chunked scan, memory linear in L: the L steps cut into K chunks of
    T ~ sqrt(L), one loop over T scans every chunk at once from zero (and keeps the products of
    the decays), one loop over the K chunks carries the state from chunk to chunk."""
    n, ch, length = u.shape
    s = a.shape[1]
    g = b.shape[1] if b.dim() == 4 else 1
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    t = max(1, round(length**0.5))  # chunk length
    k = -(-length // t)  # chunks, the last one padded with steps of delta 0 (decay 1, drive 0)
    pad = k * t - length

    def steps_first(x):  # [.., L] -> [T, .., K]: step i of every chunk contiguous
        x = torch.nn.functional.pad(x, (0, pad)).unflatten(-1, (k, t))
        return x.movedim(-1, 0)

    dt = steps_first(delta)  # [T, N, D, K]
    bt = steps_first(b.reshape(n, g, s, length)).transpose(-1, -2)  # [T, N, G, K, S]
    ct = steps_first(c.reshape(n, g, s, length)).transpose(-1, -2)
    decay = torch.exp(dt.unsqueeze(-1) * a[:, None, :])  # [T, N, D, K, S]
    du = (dt * steps_first(u)).reshape(t, n, g, ch // g, k, 1)
    drive = (du * bt.unsqueeze(3)).reshape(t, n, ch, k, s)
    h = torch.zeros_like(drive[0])  # [N, D, K, S]: every chunk from zero
    p = torch.ones_like(h)  # the product of the decays since the chunk's start
    hs, ps = [], []
    for i in range(t):
        h = decay[i] * h + drive[i]
        p = p * decay[i]
        hs.append(h)
        ps.append(p)
    carry = torch.zeros_like(h[:, :, 0])  # [N, D, S]: the state before each chunk
    starts = []
    for j in range(k):
        starts.append(carry)
        carry = ps[-1][:, :, j] * carry + hs[-1][:, :, j]
    h = torch.stack(hs) + torch.stack(ps) * torch.stack(starts, 2)  # [T, N, D, K, S]
    y = torch.einsum("tngeks,tngks->tngek", h.reshape(t, n, g, ch // g, k, s), ct)
    y = y.reshape(t, n, ch, k).movedim(0, -1).reshape(n, ch, k * t)[:, :, :length]
    if d is not None:
        y = y + d[:, None] * u
    return y
