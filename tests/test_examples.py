"""Every examples/*.res network builds, trains a step, evaluates, and compiles to a
standalone file; the transformer, pre-activation ResNet and Loop-Residual examples are
checked against direct PyTorch transcriptions (torch.nn modules wired by hand)."""
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import resdsl
from resdsl.cli import main as cli_main

from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.res"))
TOL = dict(rtol=1e-4, atol=1e-5)


def test_the_five_examples_are_there():
    names = {p.stem for p in EXAMPLES}
    assert {"cifar_resnet", "preact_resnet", "unet", "transformer", "loop_residual"} <= names
    for p in EXAMPLES:  # each says which paper it follows
        assert p.read_text().startswith("#"), f"{p.name} needs a header comment"


def example_input(path, seed=0, **params):
    """A small input for the network's first input: N=2, other symbolic axes 16."""
    g = resdsl.graph(str(path), **params)
    sizes = [ax.size if isinstance(ax.size, int) else (2 if i == 0 else 16)
             for i, ax in enumerate(g.inputs[0].shape)]
    return g, torch.randn(sizes, generator=torch.Generator().manual_seed(seed))


def out_shape(g, x):
    """The graph's declared output shape with N, H, W ... substituted from the input."""
    env = {}
    for ax, n in zip(g.inputs[0].shape, x.shape):
        if not isinstance(ax.size, int):
            env[str(ax.size)] = n
    res = []
    for ax in g.outputs[0].shape:
        s = ax.size if isinstance(ax.size, int) else eval(str(ax.size), {}, dict(env))  # noqa: S307 - our own shape text
        res.append(int(s))
    return tuple(res)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_trains_and_evaluates(path):
    g, x = example_input(path)
    gm = resdsl.build(str(path), seed=0)
    assert sum(p.numel() for p in gm.parameters()) == g.num_params()
    gm.train()
    y = gm(x)
    assert y.shape == out_shape(g, x)
    y.float().pow(2).mean().backward()
    for name, p in gm.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    # (a zero-initialised last BN, as in cifar_resnet, legitimately zeroes some gradients)
    gm.eval()
    with torch.no_grad():
        a, b = gm(x), gm(x)
    assert a.shape == y.shape and torch.isfinite(a).all()
    assert torch.equal(a, b)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_standalone_file_matches_build(path, tmp_path):
    out = tmp_path / f"{path.stem}_gen.py"
    assert cli_main(["compile", str(path), "--target", "torch", "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location(f"gen_{path.stem}", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g, x = example_input(path)
    net = getattr(mod, g.name)(seed=3)
    gm = resdsl.build(str(path), seed=3)
    assert list(net.state_dict()) == list(gm.state_dict())
    for k, v in gm.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    for mode in ("train", "eval"):
        getattr(net, mode)()
        getattr(gm, mode)()
        torch.testing.assert_close(net(x), gm(x), rtol=0, atol=0)


# ---------------------------------------------------------------- the transformer
def test_transformer_equals_torch_transformer_encoder():
    """The pre-norm encoder equals torch.nn.TransformerEncoderLayer(norm_first=True)."""
    d, depth, heads, ratio, classes = 32, 3, 4, 2, 5
    torch.manual_seed(0)
    embed = nn.Linear(32, d)
    pos = nn.Parameter(torch.randn(1, 16, d) * 0.02)
    layers = nn.ModuleList(nn.TransformerEncoderLayer(d, heads, d * ratio, dropout=0.0, activation="gelu",
                                                      batch_first=True, norm_first=True) for _ in range(depth))
    norm, head = nn.LayerNorm(d), nn.Linear(d, classes)
    for m in [embed, norm, head, *layers]:  # move norms off their ones/zeros start
        for p in m.parameters():
            p.data.add_(0.1 * torch.randn_like(p))

    def reference(x):
        h = embed(x) + pos
        for layer in layers:
            h = layer(h)
        return head(norm(h).mean(dim=1))

    gm = resdsl.build(str(ROOT / "examples/transformer.res"), seed=1, d=d, depth=depth, heads=heads,
                      mlp_ratio=ratio, classes=classes)
    sd = {"pos_embed": pos, "embed.weight": embed.weight, "embed.bias": embed.bias,
          "norm.weight": norm.weight, "norm.bias": norm.bias, "head.weight": head.weight, "head.bias": head.bias}
    rename = {"norm1": "norm1", "norm2": "norm2", "self_attn": "attn", "linear1": "mlp.fc1", "linear2": "mlp.fc2"}
    for i, layer in enumerate(layers):
        for k, v in layer.state_dict().items():
            mod, rest = k.split(".", 1)
            sd[f"blocks.{i}.{rename[mod]}.{rest}"] = v
    gm.load_state_dict(sd, strict=True)
    x = torch.randn(3, 16, 32)
    for mode in (True, False):
        gm.train(mode)
        layers.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(gm(x), reference(x), **TOL)
    assert sum(p.numel() for p in gm.parameters()) == len(torch.nn.utils.parameters_to_vector(
        [embed.weight, embed.bias, pos, norm.weight, norm.bias, head.weight, head.bias, *layers.parameters()]))


# ---------------------------------------------------------------- the Loop-Residual network
class Refine(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c)
        self.conv2, self.norm2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.GroupNorm(8, c)

    def forward(self, x):
        return F.relu(x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x))))))


class LoopResidual(nn.Module):
    def __init__(self, c, n, classes):
        super().__init__()
        self.n = n
        self.stem, self.stem_norm = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.GroupNorm(8, c)
        self.refine = Refine(c)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.stem_norm(self.stem(x)))
        for _ in range(self.n):  # the same module, n times
            x = self.refine(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_loop_residual_shares_one_set_of_weights():
    path = str(ROOT / "examples/loop_residual.res")
    counts = {n: resdsl.graph(path, c=16, n=n).num_params() for n in (1, 4, 12)}
    assert len(set(counts.values())) == 1, counts
    ref = LoopResidual(16, 4, 10)
    assert counts[4] == sum(p.numel() for p in ref.parameters())
    # the same body with `repeat` instead of `loop shared` has n copies of the block
    unshared = Path(path).read_text().replace("loop n shared { Refine(c) as refine }",
                                              "repeat n as refine { Refine(c) }")
    assert unshared != Path(path).read_text()
    one = sum(p.numel() for p in ref.refine.parameters())
    assert resdsl.graph(unshared, c=16, n=4).num_params() == counts[4] + 3 * one


@pytest.mark.parametrize("n", [1, 5])
def test_loop_residual_equals_a_module_applied_n_times(n):
    torch.manual_seed(n)
    ref = LoopResidual(16, n, 10)
    for p in ref.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    gm = resdsl.build(str(ROOT / "examples/loop_residual.res"), c=16, n=n)
    assert list(gm.state_dict()) == list(ref.state_dict())
    gm.load_state_dict(ref.state_dict(), strict=True)
    assert sum(1 for m in gm.modules() if isinstance(m, nn.Conv2d)) == 3  # stem + conv1 + conv2, once
    x = torch.randn(2, 3, 8, 8)
    y, r = gm(x), ref(x)
    torch.testing.assert_close(y, r, **TOL)
    y.sum().backward()
    r.sum().backward()  # a shared weight's gradient sums over its n uses
    grads = dict(ref.named_parameters())
    for k, p in gm.named_parameters():
        torch.testing.assert_close(p.grad, grads[k].grad, rtol=1e-4, atol=1e-4)


def test_loop_residual_torch_compile_fullgraph():
    gm = resdsl.build(str(ROOT / "examples/loop_residual.res"), seed=0, c=8, n=3).eval()
    x = torch.randn(2, 3, 8, 8)
    compiled = torch.compile(gm, fullgraph=True)  # fullgraph: a graph break is an error
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), gm(x), **TOL)


# ---------------------------------------------------------------- the pre-activation ResNet
class PreActBlock(nn.Module):
    """The full pre-activation unit, transcribed from He et al. 2016 (authors' code layout)."""

    def __init__(self, cin, c, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        if stride != 1 or cin != c:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class PreActResNet(nn.Module):
    def __init__(self, layers, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        cin = 64
        for s, n in enumerate(layers):
            c = 64 * 2 ** s
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(cin, c, 2 if i == 0 and s > 0 else 1))
                cin = c
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.conv1(x)
        for s in range(4):
            x = getattr(self, f"layer{s + 1}")(x)
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_preact_resnet18_equals_transcription():
    path = str(ROOT / "examples/preact_resnet.res")
    # PreAct ResNet-18 as usually published for CIFAR (11,171,146) plus the final BN (2 * 512)
    assert resdsl.graph(path).num_params() == 11_171_146 + 1024 == \
        sum(p.numel() for p in PreActResNet([2, 2, 2, 2]).parameters())
    torch.manual_seed(0)
    ref = PreActResNet([1, 1, 1, 1])
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    gm = resdsl.build(path, layers=[1, 1, 1, 1])
    assert list(gm.state_dict()) == list(ref.state_dict())
    gm.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    for mode in (False, True):
        gm.train(mode)
        ref.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(gm(x), ref(x), **TOL)
    for k, v in ref.state_dict().items():  # train mode updated the same running statistics
        torch.testing.assert_close(gm.state_dict()[k], v, **TOL)


# ---------------------------------------------------------------- the U-Net
def test_unet_long_skips_keep_the_resolution():
    path = str(ROOT / "examples/unet.res")
    g = resdsl.graph(path)
    assert [str(ax.size) for ax in g.outputs[0].shape] == ["N", "2", "H", "W"]
    gm = resdsl.build(path, seed=0).eval()
    x = torch.randn(1, 1, 24, 40)
    assert gm(x).shape == (1, 2, 24, 40)
    c = 16  # parameter count from the U-Net layout by hand
    dc = lambda cin, co: 9 * cin * co + 9 * co * co + 4 * co  # noqa: E731 - two bias-free convs, two BNs
    up = lambda cin, co: cin * co * 4 + co  # noqa: E731 - conv_transpose 2x2 with bias
    total = dc(1, c) + dc(c, 2 * c) + dc(2 * c, 4 * c) + dc(4 * c, 8 * c)
    total += up(8 * c, 4 * c) + dc(8 * c, 4 * c) + up(4 * c, 2 * c) + dc(4 * c, 2 * c) + up(2 * c, c) + dc(2 * c, c)
    total += c * 2 + 2
    assert g.num_params() == total
