"""Ops that carry state across time steps: spiking neurons, ConvLSTM cells and echo-state
reservoirs.

Time layout. ``lif`` and ``convlstm`` take a sequence folded into the batch axis, time-major:
``[T*N, C, ..]`` with the T steps of each sample ``steps`` apart along axis 0 (step t of sample
i at ``t*N + i``), as spikingjelly's multi-step mode flattens ``[T, N, ..]`` for its layers. The
convolutions and norms between them then run on every step unchanged. ``concat(x, x, .., dim=0)``
repeats a still image T times; ``rearrange("(t n) c -> t n c", t=T) -> mean(0)`` averages a
rate over time. ``reservoir`` takes ``[N, T, D]`` (batch first), as ``lstm`` does.

* ``lif``: leaky integrate-and-fire, u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t (hard reset) or
  decay * (u_{t-1} - threshold * s_{t-1}) + x_t (soft reset), s_t = H(u_t - threshold); the
  Heaviside step's gradient is a surrogate (rectangular, sigmoid or arctan).
* ``convlstm``: a ConvLSTM cell (Shi et al. 2015) run over the T steps from zero state: one
  convolution of [x_t, h_{t-1}] gives the gates i, f, g, o; c_t = f c_{t-1} + i tanh(g),
  h_t = o tanh(c_t). Gives the hidden states of every step.
* ``reservoir``: an echo-state reservoir with frozen (untrained) weights and a temporal residual
  (ResESN / DeepResESN): h_t = alpha * O h_{t-1} + beta * f(W_in x_t + W h_{t-1} + b), O the
  identity, a random orthogonal matrix or the cyclic shift. The weights are buffers: in the
  state_dict, not in ``parameters()``, so no optimizer trains them.
"""
from __future__ import annotations

from .. import shapes as S
from .core import (
    NONNEG,
    POS,
    REQUIRED,
    TORCH_INIT,
    Legal,
    OpError,
    ParamSpec,
    channel_and_space,
    check_dim,
    last_two_axes,
    op,
    static,
    weight,
    with_axis,
)

UNIT = Legal(0, 1)


def _check_steps(x, steps, opname):
    lead = x[0].size
    if isinstance(lead, int) and lead % steps:
        raise OpError(f"`{opname}` runs over steps={steps}: the leading axis ({lead}) must be T*N, "
                      f"a multiple of {steps}",
                      help="fold time into the batch axis, time-major: concat(x, .., x, dim=0) repeats "
                           "a still image T times")


# ------------------------------------------------------------------ lif (spiking neurons)
def _lif_label(n):
    a = n.attrs
    return f"LIF, T={a['steps']}" + (", soft reset" if a["reset"] == "soft" else "")


@op("lif", [("steps", "int", REQUIRED, POS), ("decay", "num", 0.25, UNIT), ("threshold", "num", 0.5,
                                                                         Legal(0, lo_open=True)),
            ("reset", "str", "hard", Legal(choices=("hard", "soft"))),
            ("surrogate", "str", "rect", Legal(choices=("rect", "sigmoid", "atan"))),
            ("width", "num", 1.0, Legal(0, lo_open=True))],
    traits=("module",),  # no parameters, but a module of its own (runtime_recurrent.LIF)
    doc="leaky integrate-and-fire neurons over `steps` time steps of a time-major [T*N, ..] input: "
        "u_t = decay*u_{t-1}*(1-s_{t-1}) + x_t (hard reset; soft: decay*(u_{t-1}-threshold*s_{t-1}) + x_t), "
        "s_t = (u_t > threshold) in {0, 1}; backward the surrogate gradient: rect 1/width on "
        "|u-threshold| < width/2, sigmoid(u-threshold scaled by 4/width)', atan (arctan of "
        "pi/width*(u-threshold))'",
    family="recurrent", label=_lif_label, axes=lambda n, r: [0], macs=0)
def _lif(ins, a):
    (x,) = ins
    if len(x) < 1:
        raise OpError("`lif` needs a tensor of rank >= 1, [T*N, ..]")
    _check_steps(x, a["steps"], "lif")
    return [x], {}


# ------------------------------------------------------------------ convlstm
def _convlstm_macs(n):
    x = n.inputs[0].shape
    a = n.attrs
    k = a["kernel"]
    per = 4 * a["hidden"] * (a["_in"] + a["hidden"]) * k * k
    return S.mul(S.numel((x[0],) + tuple(x[2:])), per)


@op("convlstm", [("hidden", "int", REQUIRED, POS), ("steps", "int", REQUIRED, POS),
                 ("kernel", "int", 3, POS), ("bias", "bool", True)],
    inputs=(1, 2), traits=("has_params",),
    doc="a ConvLSTM cell (Shi et al. 2015) over `steps` time steps of a time-major [T*N, C, H, W] input, "
        "from zero state (or the initial cell state c0 [N, hidden, H, W]: convlstm(x, c0, ..)): [i, f, g, o] = conv([x_t, h_{t-1}]), c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g), "
        "h_t = sigmoid(o) tanh(c_t) -> the hidden states [T*N, hidden, H, W]",
    family="recurrent", label=lambda n: f"ConvLSTM {n.attrs['kernel']}×{n.attrs['kernel']}, "
                                        f"{n.attrs['hidden']}, T={n.attrs['steps']}",
    axes=channel_and_space, macs=_convlstm_macs, init=TORCH_INIT)
def _convlstm(ins, a):
    x = ins[0]
    if len(x) != 4:
        raise OpError(f"`convlstm` takes [T*N, C, H, W], got {S.shape_str(x)}")
    if len(ins) == 2:
        c0 = ins[1]
        if len(c0) != 4 or c0[1].size != a["hidden"] or c0[2].size != x[2].size or c0[3].size != x[3].size:
            raise OpError(f"`convlstm`'s initial cell state must be [N, {a['hidden']}, H, W] with the H, W "
                          f"of its input {S.shape_str(x)}, got {S.shape_str(c0)}")
    if a["kernel"] % 2 != 1:
        raise OpError(f"convlstm kernel={a['kernel']} must be odd (the state keeps its size)", kind="value",
                      help="use kernel=3 or 5")
    _check_steps(x, a["steps"], "convlstm")
    c = static(x[1].size, "the channel axis of a `convlstm` input")
    h = check_dim(a["hidden"], "hidden channels")
    a["_in"] = c
    k = a["kernel"]
    p = {"weight": weight((4 * h, c + h, k, k))}
    if a["bias"]:
        p["bias"] = weight((4 * h,))
    return [with_axis(x, 1, h)], p


# ------------------------------------------------------------------ reservoir (echo-state networks)
def _reservoir_macs(n):
    x = n.inputs[0].shape
    a = n.attrs
    u = a["units"]
    per = u * a["_in"] + (u * u if a["spectral_radius"] > 0 else 0) + \
        (u * u if a["temporal"] in ("orthogonal", "cycle") else 0)
    return S.mul(S.mul(x[0].size, x[1].size), per)


def _reservoir_label(n):
    a = n.attrs
    kind = "linear reservoir" if a["activation"] == "linear" else "reservoir"
    res = "" if a["temporal"] == "none" else f", {a['temporal']} residual"
    return f"{kind} {a['units']}{res}"


@op("reservoir", [("units", "int", REQUIRED, POS),
                  ("temporal", "str", "orthogonal", Legal(choices=("none", "identity", "orthogonal", "cycle"))),
                  ("alpha", "num", 1.0, NONNEG), ("beta", "num", 1.0, NONNEG),
                  ("spectral_radius", "num", 0.9, NONNEG), ("input_scaling", "num", 1.0, NONNEG),
                  ("bias_scaling", "num", 0.0, NONNEG),
                  ("activation", "str", "tanh", Legal(choices=("tanh", "linear")))],
    traits=("has_params",),
    doc="an echo-state reservoir over [N, T, D] with frozen weights (buffers): "
        "h_t = alpha O h_{t-1} + beta f(W_in x_t + W h_{t-1} + b) from h_0 = 0, O the temporal residual "
        "(none: 0, identity, a random orthogonal matrix, or the cyclic shift), W random with the given "
        "spectral radius (0: none), W_in and b uniform in +-input_scaling, +-bias_scaling, f tanh or "
        "linear -> the states [N, T, units]",
    family="recurrent", label=_reservoir_label, axes=last_two_axes, macs=_reservoir_macs, init=TORCH_INIT)
def _reservoir(ins, a):
    (x,) = ins
    if len(x) != 3:
        raise OpError(f"`reservoir` takes [N, T, D] (batch first), got {S.shape_str(x)}")
    d = static(x[2].size, "the feature axis of a `reservoir` input")
    u = check_dim(a["units"], "units")
    a["_in"] = d
    p = {"weight_in": ParamSpec((u, d), "buffer")}
    if a["spectral_radius"] > 0:
        p["weight_rec"] = ParamSpec((u, u), "buffer")
    if a["bias_scaling"] > 0:
        p["bias"] = ParamSpec((u,), "buffer")
    if a["temporal"] in ("orthogonal", "cycle"):
        p["residual_map"] = ParamSpec((u, u), "buffer")
    return [with_axis(x, 2, u)], p
