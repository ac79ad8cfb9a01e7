"""The torch modules of the ops whose computation depends on the sample (resdsl/ir/ops/dynamic.py):
SkipNet's gate, a top-k router, a vector quantizer and a ResFields linear layer.

Each class is self-contained (it needs only ``torch``): the torch target copies its source into
the standalone ``.py`` file it writes, as it does for :mod:`runtime`'s classes.
"""
import torch


class SkipGate(torch.nn.Module):
    """SkipNet's gate (Wang et al. 2018): p = sigmoid(w . x + b) per sample from pooled features
    [N, C, 1, ..], the decision hard, p > threshold, at inference. While training, mode
    "straight_through" keeps the hard decision forward with the sigmoid's gradient backward (the
    paper's supervised pre-training), mode "soft" uses p itself."""

    def __init__(self, channels: int, mode: str = "straight_through", threshold: float = 0.5):
        super().__init__()
        self.mode, self.threshold = mode, threshold
        self.weight = torch.nn.Parameter(torch.empty(1, channels))
        self.bias = torch.nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self):  # as torch.nn.Linear(channels, 1)
        torch.nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        bound = self.weight.shape[1] ** -0.5
        torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        p = torch.sigmoid(torch.nn.functional.linear(x.flatten(1), self.weight, self.bias))
        p = p.reshape_as(x[:, :1])  # [N, 1, 1, ..]: torch.fx traces it
        hard = (p > self.threshold).to(p.dtype)
        if not self.training:
            return hard
        if self.mode == "soft":
            return p
        return hard - p.detach() + p

    def extra_repr(self):
        return f"channels={self.weight.shape[1]}, mode={self.mode!r}, threshold={self.threshold}"


class TopKRouter(torch.nn.Module):
    """A mixture-of-experts router: probabilities softmax(x W^T) over the experts, the top k kept
    (renormalised to sum 1 if `normalize`), zero elsewhere. Returns (gates [.., E], aux) where aux
    is the load-balancing loss of the Switch Transformer, E * sum_e f_e * P_e (f_e: the share of
    the k choices per token that go to expert e, P_e: the mean probability of e). Add it, times a
    small coefficient, to the training loss."""

    def __init__(self, dim: int, experts: int, k: int = 1, normalize: bool = False):
        super().__init__()
        self.k, self.normalize = k, normalize
        self.weight = torch.nn.Parameter(torch.empty(experts, dim))
        self.reset_parameters()

    def reset_parameters(self):  # as torch.nn.Linear(dim, experts, bias=False)
        torch.nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x):
        probs = torch.softmax(torch.nn.functional.linear(x, self.weight), -1)
        top, idx = torch.topk(probs, self.k, dim=-1)
        if self.normalize:
            top = top / top.sum(-1, keepdim=True)
        gates = torch.zeros_like(probs).scatter(-1, idx, top)
        e = probs.shape[-1]
        chosen = torch.zeros_like(probs).scatter(-1, idx, 1.0).reshape(-1, e)
        aux = e * torch.sum(chosen.mean(0) / self.k * probs.reshape(-1, e).mean(0))
        return gates, aux

    def extra_repr(self):
        e, d = self.weight.shape
        return f"dim={d}, experts={e}, k={self.k}, normalize={self.normalize}"


class VectorQuantizer(torch.nn.Module):
    """Vector quantization of the last axis (VQ-VAE, one stage of SoundStream's residual VQ): each
    vector becomes its nearest codebook entry (squared distance, the first on ties). Returns
    (x + sg[q - x], loss): the quantized tensor with the straight-through gradient, and
    mean((q - sg[x])^2) + beta * mean((x - sg[q])^2), which trains the codebook and commits the
    input to it."""

    def __init__(self, dim: int, codes: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.codebook = torch.nn.Parameter(torch.empty(codes, dim))
        self.reset_parameters()

    def reset_parameters(self):
        k = self.codebook.shape[0]
        torch.nn.init.uniform_(self.codebook, -1.0 / k, 1.0 / k)

    def codes(self, x):
        """The index of the nearest codebook entry of each vector of x [.., D]."""
        flat = x.reshape(-1, x.shape[-1])
        c = self.codebook
        dist = (flat * flat).sum(1, keepdim=True) - 2 * torch.matmul(flat, c.t()) + (c * c).sum(1)
        return dist.argmin(1).reshape(x.shape[:-1])

    def forward(self, x):
        q = self.codebook[self.codes(x)]
        loss = torch.mean((q - x.detach()) ** 2) + self.beta * torch.mean((x - q.detach()) ** 2)
        return x + (q - x).detach(), loss

    def extra_repr(self):
        return f"dim={self.codebook.shape[1]}, codes={self.codebook.shape[0]}, beta={self.beta}"


class ResFieldLinear(torch.nn.Module):
    """A ResFields layer (Mihajlovic et al. 2024): a linear map whose weight for frame t is
    W + sum_r coeffs[t, r] * basis[r] (a low-rank temporal residual). forward(x, t): x [N, D]
    or [N, P, D], t [N] the frame index of each sample (integers, or floats of whole numbers)."""

    def __init__(self, in_features: int, out_features: int, frames: int, rank: int, bias=True):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        self.bias = torch.nn.Parameter(torch.empty(out_features)) if bias else None
        self.coeffs = torch.nn.Parameter(torch.empty(frames, rank))
        self.basis = torch.nn.Parameter(torch.empty(rank, out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self):  # W, b as torch.nn.Linear, the residual small
        torch.nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            bound = self.weight.shape[1] ** -0.5
            torch.nn.init.uniform_(self.bias, -bound, bound)
        torch.nn.init.normal_(self.coeffs, 0.0, 0.01)
        torch.nn.init.normal_(self.basis, 0.0, 0.01)

    def forward(self, x, t):
        n = x.shape[0]
        delta = torch.matmul(self.coeffs[t.long()], self.basis.reshape(self.basis.shape[0], -1))
        w = self.weight + delta.reshape(n, self.weight.shape[0], self.weight.shape[1])
        y = torch.matmul(x.reshape(n, -1, x.shape[-1]), w.transpose(1, 2))
        y = y.reshape(x.shape[:-1] + (w.shape[1],))  # torch.fx traces it
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        o, i = self.weight.shape
        t, r = self.coeffs.shape
        return f"in_features={i}, out_features={o}, frames={t}, rank={r}"
