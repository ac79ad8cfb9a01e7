"""The torch modules of the ops that carry state across time steps (resdsl/ir/ops/recurrent.py):
leaky integrate-and-fire neurons, a ConvLSTM cell and an echo-state reservoir.

Each class is self-contained (it needs only ``torch``): the torch target copies its source into
the standalone ``.py`` file it writes, as it does for :mod:`runtime`'s classes.
"""

import torch


class LIF(torch.nn.Module):
    """Leaky integrate-and-fire neurons over `steps` time steps of a time-major [T*N, ..] input
    (EMS-ResNet's membrane update): u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t with a hard
    reset (soft: decay * (u_{t-1} - threshold * s_{t-1}) + x_t), s_t = (u_t > threshold).
    Backward, the step's gradient is a surrogate: "rect" 1/width on |u - threshold| < width/2,
    "sigmoid" the derivative of sigmoid(4 (u - threshold) / width), "atan" that of
    atan(pi (u - threshold) / width) / pi. The spikes forward are exactly 0 or 1."""

    def __init__(
        self, steps: int, decay=0.25, threshold=0.5, reset="hard", surrogate="rect", width=1.0
    ):
        super().__init__()
        self.steps, self.decay, self.threshold = steps, decay, threshold
        self.reset, self.surrogate, self.width = reset, surrogate, width

    def reset_parameters(self):  # nothing to initialise: the neurons have no parameters
        pass

    def spike(self, u):
        v = u - self.threshold
        if self.surrogate == "sigmoid":
            soft = torch.sigmoid(4.0 * v / self.width)
        elif self.surrogate == "atan":
            soft = torch.atan(torch.pi * v / self.width) / torch.pi
        else:
            soft = torch.clamp(v / self.width + 0.5, 0.0, 1.0)
        return (v > 0).to(u.dtype) + (soft - soft.detach())

    def forward(self, x):
        xs = x.unflatten(0, (self.steps, -1))  # [T, N, ..]: torch.fx traces it
        u = torch.zeros_like(xs[0])
        s = torch.zeros_like(xs[0])
        out = []
        for t in range(self.steps):
            if self.reset == "soft":
                u = self.decay * (u - self.threshold * s) + xs[t]
            else:
                u = self.decay * u * (1.0 - s) + xs[t]
            s = self.spike(u)
            out.append(s)
        return torch.cat(out, 0)

    def extra_repr(self):
        return (
            f"steps={self.steps}, decay={self.decay}, threshold={self.threshold}, "
            f"reset={self.reset!r}, surrogate={self.surrogate!r}, width={self.width}"
        )


class ConvLSTM(torch.nn.Module):
    """A ConvLSTM cell (Shi et al. 2015) run over `steps` time steps of a time-major
    [T*N, C, H, W] input from zero state (or from the cell state c0 [N, hidden, H, W]):
    [i, f, g, o] = conv([x_t, h_{t-1}]) (one "same" convolution, gates in torch.nn.LSTM's
    order), c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),
    h_t = sigmoid(o) tanh(c_t). Returns the hidden states of every step, [T*N, hidden, H, W]."""

    def __init__(self, in_channels: int, hidden: int, steps: int, kernel=3, bias=True):
        super().__init__()
        self.hidden, self.steps, self.kernel = hidden, steps, kernel
        shape = (4 * hidden, in_channels + hidden, kernel, kernel)
        self.weight = torch.nn.Parameter(torch.empty(shape))
        self.bias = torch.nn.Parameter(torch.empty(4 * hidden)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):  # as torch.nn.Conv2d
        torch.nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            bound = (self.weight[0].numel()) ** -0.5
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x, c0=None):
        xs = x.unflatten(0, (self.steps, -1))  # [T, N, ..]: torch.fx traces it
        h = torch.zeros_like(xs[0, :, :1]).expand(-1, self.hidden, -1, -1)
        c = h if c0 is None else c0
        out = []
        for t in range(self.steps):
            xh = torch.cat([xs[t], h], 1)
            z = torch.nn.functional.conv2d(xh, self.weight, self.bias, padding=self.kernel // 2)
            i, f, g, o = torch.chunk(z, 4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            out.append(h)
        return torch.cat(out, 0)

    def extra_repr(self):
        c = self.weight.shape[1] - self.hidden
        return f"in_channels={c}, hidden={self.hidden}, steps={self.steps}, kernel={self.kernel}"


class Reservoir(torch.nn.Module):
    """An echo-state reservoir with a temporal residual (ResESN, DeepResESN: Ceni, Pinna and
    Gallicchio): over x [N, T, D], from h_0 = 0,
        h_t = alpha * O h_{t-1} + beta * f(W_in x_t + W h_{t-1} + b)
    with f tanh (or the identity: a linear memory reservoir), O the `temporal` residual ("none": 0,
    "identity", "orthogonal": a random orthogonal matrix, "cycle": the cyclic shift), W uniform
    in [-1, 1] rescaled to `spectral_radius` (0: no W), W_in uniform in +-input_scaling and b in
    +-bias_scaling (0: no b). The weights are frozen: buffers, saved in the state_dict but not
    in parameters(), so no optimizer changes them. Returns the states [N, T, units]."""

    def __init__(
        self,
        in_features: int,
        units: int,
        temporal="orthogonal",
        alpha=1.0,
        beta=1.0,
        spectral_radius=0.9,
        input_scaling=1.0,
        bias_scaling=0.0,
        activation="tanh",
    ):
        super().__init__()
        self.units, self.temporal, self.alpha, self.beta = units, temporal, alpha, beta
        self.spectral_radius, self.input_scaling = spectral_radius, input_scaling
        self.bias_scaling, self.activation = bias_scaling, activation
        self.register_buffer("weight_in", torch.empty(units, in_features))
        if spectral_radius > 0:
            self.register_buffer("weight_rec", torch.empty(units, units))
        self.register_buffer("bias", torch.empty(units) if bias_scaling > 0 else None)
        if temporal in ("orthogonal", "cycle"):
            self.register_buffer("residual_map", torch.empty(units, units))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):  # drawn on the CPU (eigenvalues, QR), then copied
        if self.weight_in.is_meta:
            return
        u = self.units
        s = self.input_scaling
        torch.nn.init.uniform_(self.weight_in, -s, s)
        if self.spectral_radius > 0:
            w = torch.empty(u, u, device="cpu").uniform_(-1.0, 1.0)
            rho = torch.linalg.eigvals(w.double()).abs().max().item()
            self.weight_rec.copy_(w * (self.spectral_radius / rho))
        if self.bias_scaling > 0:
            torch.nn.init.uniform_(self.bias, -self.bias_scaling, self.bias_scaling)
        if self.temporal == "orthogonal":
            q, r = torch.linalg.qr(torch.randn(u, u, dtype=torch.float64, device="cpu"))
            self.residual_map.copy_(q * torch.sign(torch.diagonal(r)))
        elif self.temporal == "cycle":
            self.residual_map.copy_(torch.roll(torch.eye(u, device="cpu"), 1, 0))

    def forward(self, x):
        z = torch.nn.functional.linear(x, self.weight_in, self.bias)
        h = x.new_zeros((x.shape[0], self.units))
        out = []
        for t in range(x.shape[1]):
            pre = z[:, t]
            if self.spectral_radius > 0:
                pre = pre + torch.nn.functional.linear(h, self.weight_rec)
            act = torch.tanh(pre) if self.activation == "tanh" else pre
            if self.temporal == "identity":
                h = self.alpha * h + self.beta * act
            elif self.temporal == "none":
                h = self.beta * act
            else:
                h = self.alpha * torch.nn.functional.linear(h, self.residual_map) + self.beta * act
            out.append(h)
        return torch.stack(out, 1)

    def extra_repr(self):
        return (
            f"in_features={self.weight_in.shape[1]}, units={self.units}, "
            f"temporal={self.temporal!r}, alpha={self.alpha}, beta={self.beta}, "
            f"spectral_radius={self.spectral_radius}, activation={self.activation!r}"
        )
