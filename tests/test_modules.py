"""Blocks are modules: each block, repeat, named group, shortcut and shared loop body is an
nn.Module with its own forward, checked against torchvision's own modules; the standalone file has
a class per block; activation checkpointing keeps gradients (RNG included)."""
import ast
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import resdsl
from resdsl.diagnostics import ResdslError

from conftest import ROOT

RESNET = str(ROOT / "stdlib" / "resnet.res")
CIFAR = str(ROOT / "stdlib" / "cifar.res")
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    gm = resdsl.build(RESNET, network="resnet18", seed=0).eval()
    gm.load_state_dict(tv.state_dict(), strict=True)
    with torch.no_grad():  # non-trivial BN statistics, shared by both
        for (_, a), (_, b) in zip(tv.named_buffers(), gm.named_buffers()):
            if a.dtype.is_floating_point:
                a.uniform_(0.5, 1.5)
                b.copy_(a)
    return tv, gm


def test_blocks_are_callable_like_torchvision(pair):
    tv, gm = pair
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(gm.layer1[0](x), tv.layer1[0](x), **TOL)
        torch.testing.assert_close(gm.layer1(x), tv.layer1(x), **TOL)
        torch.testing.assert_close(gm.layer2[0].downsample(x), tv.layer2[0].downsample(x), **TOL)
        torch.testing.assert_close(gm.layer2[0](x), tv.layer2[0](x), **TOL)
    assert isinstance(gm.layer1, torch.nn.Sequential) and isinstance(gm.layer2[0].downsample, torch.nn.Sequential)
    assert type(gm.layer1[0]).__name__ == "BasicBlock"


def test_forward_hooks_fire_once_and_match(pair):
    tv, gm = pair
    got = {}

    def hook(key):
        def fn(mod, inp, out):
            got.setdefault(key, []).append(out.detach().clone())
        return fn
    handles = [gm.layer4.register_forward_hook(hook("ours")), tv.layer4.register_forward_hook(hook("tv")),
               gm.layer2[1].register_forward_hook(hook("block"))]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        gm(x), tv(x)
    for h in handles:
        h.remove()
    assert len(got["ours"]) == 1 and len(got["block"]) == 1
    torch.testing.assert_close(got["ours"][0], got["tv"][0], **TOL)


def test_code_reads_as_outline_then_blocks():
    gm = resdsl.build(RESNET, network="resnet50", device="meta")
    outline = gm.code.split("\n\n# ")[0]
    calls = [ln.split("= ")[1].split("(")[0] for ln in outline.splitlines() if "= self." in ln]
    assert calls == ["self.conv1", "self.bn1", "self.layer1", "self.layer2", "self.layer3", "self.layer4", "self.fc"]
    assert "self.conv1(x)" in gm.layer1[0].code and "downsample" in gm.layer1[0].code
    assert "# Bottleneck: layer1.0, layer2.0, layer3.0, layer4.0" in gm.code


def test_state_not_under_the_block_stays_inline():
    """A block reading state owned outside its path (a tied layer) cannot be its own module: inlined."""
    src = """
    block B(c: int) { residual { conv(c, 3, padding=1) as conv -> relu } }
    network n() {
        input x: [N, C=4, H, W]
        let shared_b = B(4)
        repeat 2 as stage (i) { shared_b }
        relu
    }
    """
    gm = resdsl.build(src, seed=0)
    x = torch.randn(1, 4, 5, 5)
    conv = dict(gm.named_modules())["shared_b.conv"]
    h = x
    for _ in range(2):
        h = h + torch.relu(conv(h))
    torch.testing.assert_close(gm(x), torch.relu(h))


def test_stateless_blocks_and_multi_output_groups():
    src = """
    block Act() { relu -> scale(2.0) }
    block Two(c: int) {
        a = conv(c, 1) as left
        b = conv(c, 1) as right
        output a, b
    }
    network n() {
        input x: [N, C=3, H, W]
        Act() as act
        l, r = Two(4) as two
        output add(l, r) -> Act() as act2
    }
    """
    gm = resdsl.build(src, seed=0)
    assert list(gm._modules) == ["act", "two", "act2"]
    x = torch.randn(1, 3, 4, 4)
    a = torch.relu(x) * 2
    left, right = gm.two(a)
    torch.testing.assert_close(gm(x), torch.relu(left + right) * 2)
    assert [k for k in gm.state_dict()] == ["two.left.weight", "two.left.bias", "two.right.weight",
                                            "two.right.bias"]


# ------------------------------------------------------------------ the standalone file
def _load(tmp_path, src, name="net_mod"):
    path = tmp_path / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_standalone_resnet50_is_short_classes_and_equal(tmp_path):
    src = resdsl.to_python(RESNET, "resnet50")
    assert len(src.splitlines()) <= 110
    tree = ast.parse(src)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["Bottleneck", "ResNet"]  # one class per block definition, as torchvision
    assert "getattr(" not in src and "put_module" not in src and "make_indexable" not in src
    assert "class Bottleneck(nn.Module):" in src and "self.layer1 = nn.Sequential(" in src
    assert "if self.downsample is not None:" in src and "out += identity" in src
    mod = _load(tmp_path, src)
    ours = mod.resnet50(seed=3)
    built = resdsl.build(RESNET, network="resnet50", seed=3)
    a, b = ours.state_dict(), built.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)  # same init, same order
    x = torch.randn(1, 3, 64, 64)
    ours.eval(), built.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), built(x))
    assert isinstance(ours.layer1[0], mod.Bottleneck) and isinstance(ours.layer1[1], mod.Bottleneck)
    assert ours.layer1[1].downsample is None and ours.layer1[0].downsample is not None


@pytest.mark.parametrize("net", ["resnet20_cifar"] + [
    pytest.param(n, marks=pytest.mark.slow) for n in ("stochastic_depth_resnet110", "densenet_bc_100_12",
                                                      "preact_resnet164")])
def test_standalone_cifar_family_same_weights(tmp_path, net):
    src = resdsl.to_python(CIFAR, net)
    mod = _load(tmp_path, src, net)
    ours = getattr(mod, net)(seed=1)
    built = resdsl.build(CIFAR, network=net, seed=1)
    a, b = ours.state_dict(), built.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 32, 32)
    ours.eval(), built.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), built(x))
    assert len(src.splitlines()) < 400


# ------------------------------------------------------------------ activation checkpointing
def _grads(model, x, seed):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(x)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("mode", ["blocks", "sqrt", 2])
def test_checkpoint_gradients_equal_with_stochastic_depth(mode):
    """drop_path draws random masks: with the RNG state preserved the recomputation draws the same."""
    kw = dict(network="CifarResNet", seed=0)  # stochastic depth: drop_path rising to 0.5
    ref = resdsl.build(CIFAR, n=3, death=0.5, **kw).train()
    ck = resdsl.build(CIFAR, n=3, death=0.5, checkpoint=mode, **kw).train()
    assert "checkpoint" in ck.layer1.code and "checkpoint" not in ref.code
    x = torch.randn(4, 3, 16, 16)
    o1, g1 = _grads(ref, x, 7)
    o2, g2 = _grads(ck, x, 7)
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    o3, _ = _grads(ref, x, 8)
    assert not torch.equal(o1, o3)  # the masks really are random


def test_checkpoint_segments():
    from resdsl.backends.torch.tree import parse_checkpoint
    gm = resdsl.build(CIFAR, network="resnet110_cifar", device="meta", checkpoint="sqrt")  # 18 blocks a stage
    code = gm.layer2.code.split("\n\n# ")[0]
    assert code.count("checkpoint_chain(") == 4 and "checkpoint(" not in code.replace("checkpoint_chain(", "")
    gm = resdsl.build(CIFAR, network="resnet110_cifar", device="meta", checkpoint="blocks")
    assert gm.layer2.code.split("\n\n# ")[0].count("checkpoint(") == 18
    gm = resdsl.build(CIFAR, network="resnet110_cifar", device="meta", checkpoint=6)
    assert gm.layer2.code.split("\n\n# ")[0].count("checkpoint_chain(") == 3
    assert list(gm.state_dict()) == list(resdsl.build(CIFAR, network="resnet110_cifar", device="meta").state_dict())
    with pytest.raises(ResdslError, match="checkpoint must be"):
        parse_checkpoint("half")


def test_compile_checkpoint_flag_writes_checkpointed_file(tmp_path):
    out = tmp_path / "rn20.py"
    r = subprocess.run([sys.executable, "-m", "resdsl.cli", "compile", CIFAR, "-n", "resnet20_cifar", "--target",
                        "torch", "--checkpoint", "sqrt", "-o", str(out)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    src = out.read_text()
    assert "def checkpoint_chain(" in src and "torch.utils.checkpoint.checkpoint(" in src
    mod = _load(tmp_path, src, "rn20")
    ours = mod.resnet20_cifar(seed=0).train()
    ref = resdsl.build(CIFAR, network="resnet20_cifar", seed=0).train()
    x = torch.randn(2, 3, 16, 16)
    o1, g1 = _grads(ref, x, 1)
    o2, g2 = _grads(ours, x, 1)
    torch.testing.assert_close(o1, o2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
