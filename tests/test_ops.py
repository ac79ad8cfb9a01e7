"""Every primitive op: its shape rule agrees with what torch computes, and its lowering
agrees with a direct torch call on the same weights."""

import pytest
import torch
import torch.nn.functional as F

import resdsl
from resdsl.ir.ops import OPS

from conftest import size_value

# op -> (input declaration, statements using it, reference(x, modules) or None)
CASES = {
    "conv": ("[N, C=4, H=9, W=9]", "conv(6, 3, stride=2, padding=\"same\" if false else 1, dilation=1, groups=2) as m",
             lambda x, m: F.conv2d(x, m["m"].weight, m["m"].bias, 2, 1, 1, 2)),
    "conv_transpose": ("[N, C=4, H=5, W=5]", "conv_transpose(3, 4, stride=2, padding=1) as m",
                       lambda x, m: F.conv_transpose2d(x, m["m"].weight, m["m"].bias, 2, 1)),
    "linear": ("[N, L=3, D=5]", "linear(7) as m", lambda x, m: F.linear(x, m["m"].weight, m["m"].bias)),
    "bn": ("[N, C=4, L=6]", "bn as m", None),
    "gn": ("[N, C=4, H=3, W=3]", "gn(2) as m", lambda x, m: F.group_norm(x, 2, m["m"].weight, m["m"].bias)),
    "ln": ("[N, L=3, D=5]", "ln(dims=2) as m", lambda x, m: F.layer_norm(x, (3, 5), m["m"].weight, m["m"].bias)),
    "rmsnorm": ("[N, L=3, D=5]", "rmsnorm as m", lambda x, m: F.rms_norm(x, (5,), m["m"].weight)),
    "relu": ("[N, D=5]", "relu", lambda x, m: torch.relu(x)),
    "gelu": ("[N, D=5]", "gelu(approximate=\"tanh\")", lambda x, m: F.gelu(x, approximate="tanh")),
    "silu": ("[N, D=5]", "silu", lambda x, m: F.silu(x)),
    "sigmoid": ("[N, D=5]", "sigmoid", lambda x, m: torch.sigmoid(x)),
    "tanh": ("[N, D=5]", "tanh", lambda x, m: torch.tanh(x)),
    "hardswish": ("[N, D=5]", "hardswish", lambda x, m: F.hardswish(x)),
    "leaky_relu": ("[N, D=5]", "leaky_relu(0.2)", lambda x, m: F.leaky_relu(x, 0.2)),
    "identity": ("[N, D=5]", "identity", lambda x, m: x),
    "softmax": ("[N, L=3, D=5]", "softmax(dim=1)", lambda x, m: torch.softmax(x, 1)),
    "scale": ("[N, D=5]", "scale(0.5)", lambda x, m: x * 0.5),
    "dropout": ("[N, D=5]", "dropout(0.3)", lambda x, m: x),
    "drop_path": ("[N, D=5]", "drop_path(0.3)", lambda x, m: x),
    "maxpool": ("[N, C=2, H=7, W=7]", "maxpool(3, stride=2, padding=1, ceil_mode=true)",
                lambda x, m: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    "avgpool": ("[N, C=2, H=7, W=7]", "avgpool(3, stride=2, padding=1, count_include_pad=false)",
                lambda x, m: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    "adaptive_avgpool": ("[N, C=2, H=7, W=7]", "adaptive_avgpool([2, 3])",
                         lambda x, m: F.adaptive_avg_pool2d(x, (2, 3))),
    "upsample": ("[N, C=2, H=3, W=4]", "upsample(2, mode=\"bilinear\")",
                 lambda x, m: F.interpolate(x, scale_factor=2.0, mode="bilinear")),
    "pixel_shuffle": ("[N, C=8, H=3, W=4]", "pixel_shuffle(2)", lambda x, m: F.pixel_shuffle(x, 2)),
    "flatten": ("[N, C=2, H=3, W=4]", "flatten(2)", lambda x, m: torch.flatten(x, 2)),
    "reshape": ("[N, C=2, H=3, W=4]", "reshape([-1, 6, 4])", lambda x, m: x.reshape(-1, 6, 4)),
    "transpose": ("[N, C=2, H=3, W=4]", "transpose(1, 3)", lambda x, m: x.transpose(1, 3)),
    "permute": ("[N, C=2, H=3, W=4]", "permute([0, 2, 3, 1])", lambda x, m: x.permute(0, 2, 3, 1)),
    "rearrange": ("[N, C=2, H=4, W=6]", "rearrange(\"n c (h p) w -> n (h w) (p c)\", p=2)",
                  None),
    "select": ("[N, L=3, D=5]", "select(1, 0)", lambda x, m: x[:, 0]),
    "add": ("[N, D=5]", "add(x, x -> scale(2.0))", lambda x, m: x + 2 * x),
    "mul": ("[N, C=3, H=2, W=2]", "mul(x, x -> adaptive_avgpool(1) -> sigmoid)",
            lambda x, m: x * torch.sigmoid(F.adaptive_avg_pool2d(x, 1))),
    "mean": ("[N, L=3, D=5]", "mean(dim=1)", lambda x, m: x.mean(1)),
    "concat": ("[N, L=3, D=5]", "concat(x, x -> relu, dim=2)", lambda x, m: torch.cat([x, torch.relu(x)], 2)),
    # tensor arithmetic: the operators of a .res expression
    "sub": ("[N, C=3, H=2, W=2]", "x - (x -> adaptive_avgpool(1))", lambda x, m: x - x.mean((2, 3), keepdim=True)),
    "div": ("[N, C=3, H=2, W=2]", "x / (x -> sigmoid)", lambda x, m: x / torch.sigmoid(x)),
    "neg": ("[N, D=5]", "-x", lambda x, m: -x),
    "shift": ("[N, D=5]", "x + 3", lambda x, m: x + 3),
    "rsub": ("[N, D=5]", "6 - x", lambda x, m: 6 - x),
    "div_scalar": ("[N, D=5]", "x / 3", lambda x, m: x / 3),
    "rdiv": ("[N, D=5]", "2 / (x -> sigmoid)", lambda x, m: 2 / torch.sigmoid(x)),
    "matmul": ("[N, L=3, D=5]", "matmul(x, x -> transpose(1, 2))", lambda x, m: x @ x.transpose(1, 2)),
    "split": ("[N, C=5, L=2]", "a, b = split([2, 3])\n    concat(b, a)", lambda x, m: torch.cat([x[:, 2:], x[:, :2]], 1)),
    "chunk": ("[N, C=4, L=2]", "a, b = chunk(2)\n    mul(a, b)", lambda x, m: x[:, :2] * x[:, 2:]),
    "embedding": (None, None, None),  # integer inputs: tested below
    "attention": ("[N, L=4, D=8]", "attention(2) as m",
                  lambda x, m: m["m"].forward(x)),
    "param": ("[N, L=3, D=5]", "add(x, param([1, 3, 5], init=normal(1.0)) as p)", lambda x, m: x + m["_p"]),
    "layer_scale": ("[N, C=3, H=2, W=2]", "layer_scale(0.1) as m", lambda x, m: x * m["m"].gamma.view(1, 3, 1, 1)),
    "scalar_mul": ("[N, D=5]", "scalar_mul(0.5) as s", lambda x, m: x * m["_s"]),
    "ln2d": ("[N, C=3, H=2, W=4]", "ln2d as m",
             lambda x, m: F.layer_norm(x.permute(0, 2, 3, 1), (3,), m["m"].weight, m["m"].bias).permute(0, 3, 1, 2)),
    "expand": ("[N, L=3, D=5]", "concat(expand(param([1, 1, 5], init=normal(1.0)) as p, x), x, dim=1)",
               lambda x, m: torch.cat([m["_p"].expand(x.shape[0], -1, -1), x], 1)),
    "stack": ("[N, L=3, D=5]", "stack(x, x -> relu, dim=1)", lambda x, m: torch.stack([x, x.relu()], 1)),
    "sum": ("[N, L=3, D=5]", "sum(dim=[1, 2], keepdim=true)", lambda x, m: x.sum((1, 2), keepdim=True)),
    "buffer": ("[N, L=3, D=2]", "add(x, buffer([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]) as b)",
               lambda x, m: x + torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])),
    "index": ("[N, L=3, D=4]", "index(x, buffer([[2, 0], [1, 1]]) as i, dim=1)", lambda x, m: x[:, [[2, 0], [1, 1]]]),
    "roll": ("[N, C=2, H=3, W=4]", 'roll([1, -5], ["H", 3])', lambda x, m: torch.roll(x, (1, -5), (2, 3))),
    "pad": ("[N, C=2, H=3, W=4]", "pad([1, 2, 0, 0, 3, 0])", lambda x, m: F.pad(x, (1, 2, 0, 0, 3, 0))),
    "l2norm": ("[N, L=3, D=5]", "l2norm", lambda x, m: F.normalize(x, dim=-1)),
    "unsqueeze": ("[N, L=3, D=5]", "unsqueeze(-2)", lambda x, m: x.unsqueeze(-2)),
    "squeeze": ("[N, L=1, D=5]", "squeeze(1)", lambda x, m: x.squeeze(1)),
    "pad_to_multiple": ("[N, C=2, H=3, W=5]", "pad_to_multiple(4, dims=[2, 3], value=0.5)",
                        lambda x, m: F.pad(x, (0, 3, 0, 1), value=0.5)),
    "crop": ("[N, C=2, H=3, W=5]", "crop([2, 4], dims=[2, 3])", lambda x, m: x[:, :, :2, :4]),
    "scalar_add": ("[N, D=5]", "scalar_add(0.5) as s", lambda x, m: x + m["_s"]),
    "lstm": ("[N, L=3, D=5]", "lstm(4, bidirectional=true) as m", lambda x, m: m["m"](x)[0]),
    "orthogonal": ("[N, L=3, D=5]", "orthogonal(x -> scale(2.0) -> tanh, x)",
                   lambda x, m: _orth(torch.tanh(2.0 * x), x)),
    # activations and elementwise math against the torch functions
    "relu6": ("[N, D=5]", "scale(4.0) -> relu6", lambda x, m: F.relu6(4 * x)),
    "clamp": ("[N, D=5]", "clamp(-0.5, 0.7)", lambda x, m: torch.clamp(x, -0.5, 0.7)),
    "hardtanh": ("[N, D=5]", "hardtanh(-0.3, max_val=0.9)", lambda x, m: F.hardtanh(x, -0.3, 0.9)),
    "hardsigmoid": ("[N, D=5]", "scale(4.0) -> hardsigmoid", lambda x, m: F.hardsigmoid(4 * x)),
    "elu": ("[N, D=5]", "elu(0.7)", lambda x, m: F.elu(x, 0.7)),
    "selu": ("[N, D=5]", "selu", lambda x, m: F.selu(x)),
    "celu": ("[N, D=5]", "celu(alpha=1.5)", lambda x, m: F.celu(x, 1.5)),
    "mish": ("[N, D=5]", "mish", lambda x, m: F.mish(x)),
    "softplus": ("[N, D=5]", "scale(8.0) -> softplus(beta=2.0, threshold=10.0)",
                 lambda x, m: F.softplus(8 * x, 2.0, 10.0)),
    "softsign": ("[N, D=5]", "softsign", lambda x, m: F.softsign(x)),
    "prelu": ("[N, C=3, H=2, W=2]", "prelu(3, init=0.1) as act -> prelu as one",
              lambda x, m: F.prelu(F.prelu(x, m["act"].weight), m["one"].weight)),
    "glu": ("[N, C=6, H=2, W=2]", "glu(dim=1)", lambda x, m: F.glu(x, 1)),
    "logsigmoid": ("[N, D=5]", "scale(30.0) -> logsigmoid", lambda x, m: F.logsigmoid(30 * x)),
    "exp": ("[N, D=5]", "exp", lambda x, m: torch.exp(x)),
    "log": ("[N, D=5]", "exp -> log", lambda x, m: torch.log(torch.exp(x))),
    "sqrt": ("[N, D=5]", "abs -> sqrt", lambda x, m: torch.sqrt(x.abs())),
    "rsqrt": ("[N, D=5]", "exp -> rsqrt", lambda x, m: torch.rsqrt(torch.exp(x))),
    "abs": ("[N, D=5]", "y = abs(x)\n    add(y, x)", lambda x, m: x.abs() + x),
    # elementwise math (resdsl/ir/ops/elementwise_math.py; more in tests/test_tensor_math.py)
    "floordiv": ("[N, D=5]", "x // 0.3", lambda x, m: x // 0.3),
    "mod": ("[N, D=5]", "x % 0.7", lambda x, m: x % 0.7),
    "pow": ("[N, D=5]", "y = abs(x)\n    y ** 1.5", lambda x, m: x.abs() ** 1.5),
    "minimum": ("[N, D=5]", "minimum(x, x * 0.5)", lambda x, m: torch.minimum(x, x * 0.5)),
    "maximum": ("[N, D=5]", "max(x, 0.1)", lambda x, m: torch.clamp(x, min=0.1)),
    "lt": ("[N, D=5]", "x < 0.2", lambda x, m: x < 0.2),
    "le": ("[N, D=5]", "x <= x * 0.5", lambda x, m: x <= x * 0.5),
    "gt": ("[N, D=5]", "0.2 < x", lambda x, m: x > 0.2),
    "ge": ("[N, D=5]", "x >= 0.2", lambda x, m: x >= 0.2),
    "eq": ("[N, D=5]", "floor(x) == 0", lambda x, m: torch.floor(x) == 0),
    "ne": ("[N, D=5]", "floor(x) != 0", lambda x, m: torch.floor(x) != 0),
    "where": ("[N, D=5]", "where(x > 0, x, 0.0)", lambda x, m: torch.where(x > 0, x, 0.0)),
    "sin": ("[N, D=5]", "sin", lambda x, m: torch.sin(x)),
    "cos": ("[N, D=5]", "cos(x)", lambda x, m: torch.cos(x)),
    "floor": ("[N, D=5]", "x * 3 -> floor", lambda x, m: torch.floor(x * 3)),
    "ceil": ("[N, D=5]", "ceil(x * 3)", lambda x, m: torch.ceil(x * 3)),
    "atan2": ("[N, D=6]", "a, b = x -> chunk(2, dim=1)\n    atan2(a, b)",
              lambda x, m: torch.atan2(*x.chunk(2, dim=1))),
    "arange": ("[N, D=5]", "x + arange(x, dim=1)", lambda x, m: x + torch.arange(5.0)),
    "quantize": ("[N, D=5]", "x * 3 -> quantize", lambda x, m: torch.round(x * 3)),
    # computation chosen per sample (resdsl/ir/ops/dynamic.py): each against its equations
    "skip_gate": ("[N, C=4, H=3, W=3]", "adaptive_avgpool(1) -> skip_gate as m",
                  lambda x, m: (torch.sigmoid(F.linear(x.mean((2, 3)), m["m"].weight, m["m"].bias)) > 0.5)
                  .float().view(-1, 1, 1, 1)),
    "route": ("[N, L=3, D=5]", "g, aux = route(4, k=2) as m\n    g", lambda x, m: _topk_gates(x, m["m"].weight, 2)),
    "combine": ("[N, L=3, D=5]", "g, aux = route(3, k=2) as r\n    combine(g, x, x -> tanh, x -> scale(2.0))",
                lambda x, m: sum(_topk_gates(x, m["r"].weight, 2)[..., e:e + 1] * y
                                 for e, y in enumerate([x, torch.tanh(x), 2.0 * x]))),
    "vq": ("[N, L=3, D=5]", "q, loss = vq(6) as m\n    q",
           lambda x, m: m["m"].codebook[torch.cdist(x.reshape(-1, 5), m["m"].codebook).argmin(1)].reshape(x.shape)),
    "resfield": ("[N, P=3, D=5]", ("t = x -> select(1, 0) -> select(1, 0) -> abs -> clamp(max=2.0)\n    "
                                   "resfield(x, t, 4, 3, 2) as m"), lambda x, m: _resfield(x, m["m"])),
    # attention of given q, k, v (GPT-2's, stdlib/gpt2.res) against softmax(q k^T / sqrt(d)) v written out
    "sdpa": ("[N, L=5, D=8]", "sdpa(x, x -> scale(0.5), x -> tanh, 2, causal=true)",
             lambda x, m: _attend(x, 0.5 * x, torch.tanh(x), 2, causal=True)),
    "positions": ("[N, L=5]", "x -> positions -> embedding(5, 3) as m", lambda x, m: m["m"].weight[None]),
    # state across time steps (resdsl/ir/ops/recurrent.py): each against its equations
    "lif": ("[N, C=3, L=4]", "lif(2, decay=0.5, threshold=0.1)", lambda x, m: _lif(x, 2, 0.5, 0.1)),
    "convlstm": ("[N, C=2, H=4, W=4]", "convlstm(3, 2) as m", lambda x, m: _convlstm(x, m["m"], 2)),
    "reservoir": ("[N, L=4, D=3]", "reservoir(5, bias_scaling=0.5) as m", lambda x, m: _reservoir(x, m["m"])),
    # Mamba's selective scan (resdsl/ir/ops/ssm.py) against its recurrence, a step at a time
    "selective_scan": ("[N, D=4, L=6]", ("a = param([4, 2], init=normal(1.0)) as a\n    b, c = x -> split([2, 2], dim=1)\n"
                                         "    selective_scan(x, x -> sigmoid, -exp(a), b, c, delta_softplus=true)"),
                       lambda x, m: _s6(x, F.softplus(torch.sigmoid(x)), -torch.exp(m["_a"]), *x.split([2, 2], 1))),
}


def _s6(u, delta, a, b, c):
    """h_t = exp(delta_t a) h_{t-1} + delta_t b_t u_t, y_t = c_t h_t, over the L steps of u [N, D, L]."""
    h, ys = 0.0, []
    for t in range(u.shape[2]):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * a) * h + dt * b[:, None, :, t] * u[:, :, t, None]
        ys.append((h * c[:, None, :, t]).sum(-1))
    return torch.stack(ys, -1)


def _lif(x, steps, decay, th):
    """u_t = decay u_{t-1} (1 - s_{t-1}) + x_t, s_t = u_t > th, over the time-major steps of x."""
    u, s, out = 0.0, 0.0, []
    for x_t in x.chunk(steps, 0):
        u = decay * u * (1 - s) + x_t
        s = (u > th).float()
        out.append(s)
    return torch.cat(out, 0)


def _convlstm(x, m, steps):
    h = c = torch.zeros(x.shape[0] // steps, m.hidden, *x.shape[2:])
    out = []
    for x_t in x.chunk(steps, 0):
        i, f, g, o = F.conv2d(torch.cat([x_t, h], 1), m.weight, m.bias, padding=1).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        out.append(h)
    return torch.cat(out, 0)


def _reservoir(x, m):
    """h_t = O h_{t-1} + tanh(W_in x_t + W h_{t-1} + b), alpha = beta = 1."""
    h, out = torch.zeros(x.shape[0], m.units), []
    for t in range(x.shape[1]):
        h = h @ m.residual_map.T + torch.tanh(x[:, t] @ m.weight_in.T + h @ m.weight_rec.T + m.bias)
        out.append(h)
    return torch.stack(out, 1)


def _topk_gates(x, w, k):
    """Softmax over the experts, the top k kept (not renormalised), zero elsewhere."""
    p = torch.softmax(x @ w.T, -1)
    keep = p >= p.topk(k, -1).values[..., -1:]
    return torch.where(keep, p, torch.zeros_like(p))


def _resfield(x, m):
    """y = x (W + sum_r v[t, r] M_r)^T + b, one frame index t = int(|x[:, 0, 0]|) per sample."""
    t = x[:, 0, 0].abs().clamp(max=2.0).long()
    w = m.weight + torch.einsum("nr,rod->nod", m.coeffs[t], m.basis)
    return torch.einsum("npd,nod->npo", x, w) + m.bias


def _attend(q, k, v, heads, causal=False):
    n, L, d = q.shape
    q, k, v = (t.reshape(n, L, heads, d // heads).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / (d // heads) ** 0.5
    if causal:
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    return (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(n, L, d)


def _orth(f, x, eps=1e-6):
    return f - (x * f).sum(-1, keepdim=True) / ((x * x).sum(-1, keepdim=True) + eps) * x


def _build(decl, stmts):
    src = f"network n() {{\n    input x: {decl}\n    {stmts}\n}}\n"
    return src, resdsl.graph(src), resdsl.build(src, seed=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_shape_and_value(name):
    decl, stmts, ref = CASES[name]
    if decl is None:
        return test_embedding()
    src, g, gm = _build(decl, stmts)
    assert any(n.op == name for n in g.nodes), f"{name} not used by its case"
    gm.eval()
    x = torch.randn(2, *[int(d.split("=")[1]) for d in decl.strip("[]").split(", ")[1:]])
    with torch.no_grad():
        y = gm(x)
    want = tuple(size_value(a.size, {"N": 2}) for a in g.outputs[0].shape)
    assert tuple(y.shape) == want
    if ref is not None:
        mods = dict(gm.named_modules())
        mods.update({"_" + k: v for k, v in gm.named_parameters()})
        with torch.no_grad():
            torch.testing.assert_close(y, ref(x, mods))


def test_every_op_has_a_case():
    assert set(OPS) <= set(CASES), f"ops without a test case: {sorted(set(OPS) - set(CASES))}"


def test_embedding():
    src = "network n() {\n    input ids: [N, L=6]\n    embedding(11, 4) as tok\n}\n"
    gm = resdsl.build(src, seed=0)
    ids = torch.randint(0, 11, (2, 6))
    torch.testing.assert_close(gm(ids), gm.tok.weight[ids])


def test_batchnorm_train_and_eval():
    src, g, gm = _build("[N, C=4, L=6]", "bn(momentum=0.5) as m")
    x = torch.randn(3, 4, 6)
    gm.train()
    torch.testing.assert_close(gm(x), F.batch_norm(x, None, None, gm.m.weight, gm.m.bias, True))
    torch.testing.assert_close(gm.m.running_mean, 0.5 * x.mean((0, 2)))
    gm.eval()
    torch.testing.assert_close(gm(x), F.batch_norm(x, gm.m.running_mean, gm.m.running_var, gm.m.weight,
                                                   gm.m.bias, False))


def test_rearrange_matches_manual_permute():
    src, g, gm = _build("[N, C=2, H=4, W=6]", "rearrange(\"n c (h p) w -> n (h w) (p c)\", p=2)")
    x = torch.randn(2, 2, 4, 6)
    want = x.reshape(2, 2, 2, 2, 6).permute(0, 2, 4, 3, 1).reshape(2, 2 * 6, 2 * 2)
    torch.testing.assert_close(gm(x), want)


def test_attention_matches_multihead_attention():
    src, g, gm = _build("[N, L=4, D=8]", "attention(2) as m")
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    mha.load_state_dict(gm.m.state_dict())
    x = torch.randn(3, 4, 8)
    gm.eval(), mha.eval()
    with torch.no_grad():
        torch.testing.assert_close(gm(x), mha(x, x, x, need_weights=False)[0])


@pytest.mark.parametrize("stmt,ref", [
    ("ln(affine=false)", lambda x: F.layer_norm(x, (5,))),
    ("gn(5, affine=false)", lambda x: F.group_norm(x.transpose(1, 2), 5).transpose(1, 2)),
    ("rmsnorm(affine=false)", lambda x: F.rms_norm(x, (5,))),
])
def test_norms_without_affine(stmt, ref):
    if stmt.startswith("gn"):
        stmt = "transpose(1, 2) -> " + stmt + " -> transpose(1, 2)"
    src, g, gm = _build("[N, L=4, D=5]", stmt)
    x = torch.randn(2, 4, 5)
    assert not list(gm.parameters())
    torch.testing.assert_close(gm(x), ref(x))


def test_ln2d_without_affine_and_param_default_init():
    src, g, gm = _build("[N, C=3, H=2, W=4]", "ln2d(affine=false) -> add(param([1, 3, 1, 1]) as p)")
    x = torch.randn(2, 3, 2, 4)
    assert torch.count_nonzero(gm.p) == 0  # param's default init is zeros
    torch.testing.assert_close(gm(x), F.layer_norm(x.permute(0, 2, 3, 1), (3,)).permute(0, 3, 1, 2))


def test_conv_1d_3d_and_same_padding():
    for decl, k in (("[N, C=3, L=10]", 1), ("[N, C=3, D=4, H=5, W=6]", 3)):
        src, g, gm = _build(decl, "conv(4, 3, padding=\"same\", dilation=2) as m")
        x = torch.randn(2, *[int(d.split("=")[1]) for d in decl.strip("[]").split(", ")[1:]])
        conv = getattr(F, f"conv{k}d")
        torch.testing.assert_close(gm(x), conv(x, gm.m.weight, gm.m.bias, 1, "same", 2))
        assert tuple(gm(x).shape[2:]) == tuple(x.shape[2:])


# legal values of the activations' attributes, and names shared with builtins
@pytest.mark.parametrize("stmt,message", [
    ("clamp", "needs `min`, `max` or both"),
    ("clamp(1.0, 0.5)", "is above max"),
    ("hardtanh(1.0, 1.0)", "must be below max_val"),
    ("celu(0.0)", "must not be 0"),
    ("softplus(beta=0)", "must be positive"),
    ("softplus(beta=-1.0)", "must be positive"),
    ("elu(alpha=float(\"inf\"))", "not a finite number"),  # caught where float() makes it
    ('gelu(approximate="fast")', 'must be one of "none", "tanh"'),  # the op table's legal values
    ("prelu(4)", "must be 1 or the channel count"),
    ("glu(dim=2)", "odd"),
    ("clamp(min=true)", "must be a number"),
])
def test_new_ops_reject_illegal_attributes(stmt, message):
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(f"network n() {{\n    input x: [N, C=3, H=5, W=4]\n    {stmt}\n}}\n")
    assert message in e.value.message
    assert e.value.span is not None and e.value.span.line == 3


def test_prelu_is_torch_prelu():
    gm = resdsl.build("network n() {\n    input x: [N, C=3, H=2, W=2]\n    prelu(3) as act\n}\n", seed=0)
    ref = torch.nn.PReLU(3)
    assert {k: tuple(v.shape) for k, v in gm.state_dict().items()} == {"act.weight": (3,)}
    torch.testing.assert_close(gm.act.weight, ref.weight)  # same initial slope, 0.25
    src = "network n() {\n    input x: [N, D=4]\n    prelu(init=0.1) as act\n}\n"
    torch.testing.assert_close(resdsl.build(src, seed=0).act.weight, torch.full((1,), 0.1))


def test_abs_sqrt_log_are_ops_on_tensors_and_builtins_on_numbers():
    gm = resdsl.build("network n() {\n    input x: [N, D=5]\n    let k = int(sqrt(16)) + abs(-1) + int(log(1))\n"
                      "    y = x -> abs -> linear(k, bias=false) as fc\n    sqrt(abs(y))\n}\n", seed=0)
    assert gm.fc.weight.shape == (5, 5)
    x = torch.randn(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), torch.sqrt(torch.abs(gm.fc(x.abs()))))


def test_generated_file_runs_the_new_ops(tmp_path):
    src = ("network n() {\n    input x: [N, C=4, H=3, W=3]\n"
           "    prelu(4) as a -> hardsigmoid -> clamp(max=0.6) -> softplus(beta=2.0) -> mish -> glu(dim=1)\n}\n")
    gm = resdsl.build(src, seed=3).eval()
    code = resdsl.to_python(src)
    ns = {}
    exec(compile(code, "gen.py", "exec"), ns)
    m = ns["n"](seed=3).eval()
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(m(x), gm(x))
