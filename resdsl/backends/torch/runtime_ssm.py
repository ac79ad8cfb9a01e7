"""The torch function of `selective_scan` (resdsl/ir/ops/ssm.py): Mamba's selective scan (S6).

Self-contained (it needs only ``torch``): the torch target copies its source into the
standalone ``.py`` file it writes, as it does for :mod:`runtime`'s classes.
"""

import torch


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """Mamba's selective scan (S6), as mamba_ssm's selective_scan_fn computes it.

    u, delta [N, D, L]; A [D, S]; B, C [N, S, L] or [N, G, S, L] (G groups of D/G channels);
    D, delta_bias [D] or None. From h_0 = 0, per channel and state element:
        delta = softplus(delta + delta_bias)  (the softplus only if delta_softplus)
        h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = sum_s C_t h_t + D u_t.
    Returns y [N, D, L]. A chunked scan, memory linear in L: the L steps cut into chunks of
    T ~ sqrt(L); one loop over T scans every chunk at once from zero (and keeps the products of
    the decays), one loop over the chunks carries the state from chunk to chunk."""
    n, d, length = u.shape
    s = A.shape[1]
    g = B.shape[1] if B.dim() == 4 else 1
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    b = B.reshape(n, g, 1, s, length).transpose(3, 4)  # [N, G, 1, L, S]
    decay = torch.exp(delta.unsqueeze(-1) * A[:, None, :])  # [N, D, L, S]
    drive = ((delta * u).reshape(n, g, d // g, length, 1) * b).reshape(n, d, length, s)
    t = max(1, round(length**0.5))  # chunk length
    pad = -length % t
    if pad:  # trailing steps that change nothing: decay 1, drive 0
        decay = torch.nn.functional.pad(decay, (0, 0, 0, pad), value=1.0)
        drive = torch.nn.functional.pad(drive, (0, 0, 0, pad))
    k = (length + pad) // t
    decay = decay.reshape(n, d, k, t, s)
    drive = drive.reshape(n, d, k, t, s)
    h = torch.zeros_like(drive[:, :, :, 0])  # [N, D, K, S]: every chunk from zero
    p = torch.ones_like(h)  # the product of the decays since the chunk's start
    hs, ps = [], []
    for i in range(t):
        h = decay[:, :, :, i] * h + drive[:, :, :, i]
        p = p * decay[:, :, :, i]
        hs.append(h)
        ps.append(p)
    h, p = torch.stack(hs, 3), torch.stack(ps, 3)  # [N, D, K, T, S]
    carry = torch.zeros_like(h[:, :, 0, 0])  # [N, D, S]: the state before each chunk
    starts = []
    for j in range(k):
        starts.append(carry)
        carry = p[:, :, j, -1] * carry + h[:, :, j, -1]
    h = h + p * torch.stack(starts, 2).unsqueeze(3)
    h = h.reshape(n, g, d // g, k * t, s)[:, :, :, :length]
    y = torch.einsum("ngels,ngsl->ngel", h, C.reshape(n, g, s, length)).reshape(n, d, length)
    if D is not None:
        y = y + D[:, None] * u
    return y
