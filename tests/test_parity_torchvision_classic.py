"""The classic torchvision families in stdlib/ (alexnet.res, vgg.res, googlenet.res,
inception.res, squeezenet.res, mobilenetv2.res, mnasnet.res, shufflenet.res and the
EfficientNet-B ladder in efficientnet.res) against torchvision 0.29.1.

For each network: torchvision's model (default arguments) is built on the meta device,
its state_dict is filled with random values (weights scaled by 1/sqrt(fan_in), random BN
affine and running statistics), and that state_dict is loaded with strict=True, with
assign=True, into torchvision's model and into ours. Then: equal parameter counts,
equal outputs in eval mode, and in train mode (every dropout and stochastic-depth draw
made from the same seed, so both draw the same masks) equal outputs and equal updated
BN running statistics. Random weights instead of torchvision's initialisation keep the
test fast (one fill per network, no init of 143M parameters twice).

The ladders (vgg, efficientnet_b0..b7, mnasnet, shufflenet) check a representative
subset in eval and train mode at two input sizes; the rest load strictly, count equal
and agree on one eval forward.
"""
import math
from collections import OrderedDict
import warnings

import pytest
import torch
import torchvision
from conftest import ROOT

import resdsl

TOL = dict(rtol=1e-4, atol=1e-5)


def stdlib(name):
    return str(ROOT / "stdlib" / name)


def reference(name, **kw):
    """torchvision's model with default arguments, on the meta device (no initialisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet / inception_v3: init_weights=None
        with torch.device("meta"):
            return getattr(torchvision.models, name)(**kw)


def random_state(ref, seed=0):
    """A state_dict with ref's keys, shapes and dtypes, and random values that keep the
    activations of a deep network in a sane range."""
    g = torch.Generator().manual_seed(seed)
    sd = ref.state_dict()
    out = OrderedDict()
    out._metadata = sd._metadata  # MNASNet's loader reads its version from it
    for k, v in sd.items():
        shape = tuple(v.shape)
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7, dtype=v.dtype)
        elif k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("running_mean"):
            out[k] = 0.1 * torch.randn(shape, generator=g)
        elif v.dim() >= 2:  # conv and linear weights
            out[k] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif k.endswith("weight"):  # BN scale
            out[k] = 1.0 + 0.2 * torch.randn(shape, generator=g)
        else:  # biases
            out[k] = 0.1 * torch.randn(shape, generator=g)
    return out


def pair(path, network, ref_name=None, ref_kw=None, **params):
    """(torchvision model, our model), both holding the same random state_dict."""
    ref = reference(ref_name or network, **(ref_kw or {}))
    state = random_state(ref)
    gm = resdsl.build(stdlib(path), network=network, device="meta", **params)
    assert set(gm.state_dict()) == set(state), (sorted(set(state) - set(gm.state_dict()))[:5],
                                               sorted(set(gm.state_dict()) - set(state))[:5])
    ref.load_state_dict(state, strict=True, assign=True)
    gm.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    assert not any(t.is_meta for t in gm.state_dict().values())
    n = sum(p.numel() for p in gm.parameters())
    assert n == sum(p.numel() for p in ref.parameters())
    assert n == resdsl.graph(stdlib(path), network=network, **params).num_params()
    return ref, gm


def outputs(y):
    """A model's output as a tuple of tensors (GoogLeNetOutputs / InceptionOutputs are tuples)."""
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def same_kind(want, got):
    """Both a tensor (every eval output, googlenet's and inception_v3's included), or both a
    namedtuple with the same field names (GoogLeNetOutputs / InceptionOutputs in train mode)."""
    assert isinstance(got, torch.Tensor) == isinstance(want, torch.Tensor), (type(want), type(got))
    assert getattr(got, "_fields", None) == getattr(want, "_fields", None)


def compare_eval(ref, gm, size, batch=2):
    ref.eval()
    gm.eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        rw, rg = ref(x), gm(x)
    same_kind(rw, rg)
    want, got = outputs(rw), outputs(rg)
    assert len(want) == len(got)
    for w, o in zip(want, got):
        assert w.shape == o.shape
        assert w.std() > 1e-3  # not a comparison of two constants
        torch.testing.assert_close(o, w, **TOL)


def compare_train(ref, gm, size, batch=2, dtype=torch.float32):
    """dtype=float64 for the deepest networks: train-mode BN over batch 2 on a 2x2 grid
    normalises 8 values per channel and amplifies fp32 rounding (efficientnet_b5: 8e-5
    apart in fp32, 2e-13 in fp64)."""
    ref.train().to(dtype)
    gm.train().to(dtype)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size + 1), dtype=dtype)
    with torch.no_grad():
        torch.manual_seed(11)
        rw = ref(x)
        torch.manual_seed(11)
        rg = gm(x)
    same_kind(rw, rg)
    want, got = outputs(rw), outputs(rg)
    assert len(want) == len(got)
    for w, o in zip(want, got):
        assert w.std() > 1e-3
        torch.testing.assert_close(o, w, **TOL)
    rs, gs = ref.state_dict(), gm.state_dict()
    for k, v in rs.items():  # the updated running statistics agree
        if "running" in k:
            torch.testing.assert_close(gs[k], v, **TOL, msg=k)
    ref.float()
    gm.float()


# (stdlib file, network, image sizes): eval and train mode at each size
FULL = [
    ("alexnet.res", "alexnet", (64, 96)),
    ("vgg.res", "vgg11", (32, 64)),
    ("vgg.res", "vgg19_bn", (32, 64)),
    ("googlenet.res", "googlenet", (64, 96)),
    ("squeezenet.res", "squeezenet1_0", (64, 96)),
    ("squeezenet.res", "squeezenet1_1", (64, 96)),
    ("mobilenetv2.res", "mobilenet_v2", (64, 96)),
    ("mnasnet.res", "mnasnet0_5", (64, 96)),
    ("mnasnet.res", "mnasnet1_3", (64, 96)),
    ("shufflenet.res", "shufflenet_v2_x0_5", (64, 96)),
    ("shufflenet.res", "shufflenet_v2_x1_0", (64, 96)),
    ("efficientnet.res", "efficientnet_b0", (64, 96)),
    ("efficientnet.res", "efficientnet_b5", (64, 96)),
]
# the rest of each ladder: strict load, equal counts, one eval forward
LIGHT = [("vgg.res", n) for n in ("vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn")] + \
    [("mnasnet.res", n) for n in ("mnasnet0_75", "mnasnet1_0")] + \
    [("shufflenet.res", n) for n in ("shufflenet_v2_x1_5", "shufflenet_v2_x2_0")] + \
    [("efficientnet.res", f"efficientnet_b{i}") for i in (1, 2, 3, 4, 6, 7)]


@pytest.mark.slow
@pytest.mark.parametrize("path,network,sizes", FULL, ids=[c[1] for c in FULL])
def test_outputs_eval_and_train(path, network, sizes):
    ref, gm = pair(path, network)
    deep = torch.float64 if network == "efficientnet_b5" else torch.float32
    for size in sizes:
        compare_eval(ref, gm, size)
        compare_train(ref, gm, size, dtype=deep)


@pytest.mark.slow
@pytest.mark.parametrize("path,network", LIGHT, ids=[c[1] for c in LIGHT])
def test_strict_load_counts_and_eval(path, network):
    ref, gm = pair(path, network)
    compare_eval(ref, gm, 64)


@pytest.mark.slow
def test_inception_v3_with_aux_logits():
    """torchvision's default: the auxiliary head on the 17x17 grid, so 299x299 inputs in train
    mode; in eval mode the head is not computed, so the smaller sizes work as in torchvision."""
    ref, gm = pair("inception.res", "inception_v3")
    for size in (75, 96):  # 75: the smallest input inception_v3 takes
        compare_eval(ref, gm, size)
    compare_train(ref, gm, 299)  # InceptionOutputs(logits, aux_logits)


@pytest.mark.slow
def test_inception_v3_without_aux_logits():
    ref, gm = pair("inception.res", "Inception3", "inception_v3", {"aux_logits": False}, aux_logits=False)
    for size in (75, 96):  # 75: the smallest input inception_v3 takes
        compare_eval(ref, gm, size)
        compare_train(ref, gm, size)


@pytest.mark.slow
def test_googlenet_without_aux_logits_and_with_transform_input():
    """The pretrained weights' settings: no auxiliary heads, ImageNet input normalisation undone."""
    kw = {"aux_logits": False, "transform_input": True}
    ref, gm = pair("googlenet.res", "GoogLeNet", "googlenet", kw, **kw)
    compare_eval(ref, gm, 64)
    compare_train(ref, gm, 96)


INIT = [("alexnet.res", "alexnet"), ("squeezenet.res", "squeezenet1_1"), ("mobilenetv2.res", "mobilenet_v2"),
        ("mnasnet.res", "mnasnet0_5"), ("shufflenet.res", "shufflenet_v2_x0_5"), ("googlenet.res", "googlenet"),
        ("efficientnet.res", "efficientnet_b0")]


@pytest.mark.parametrize("path,network", INIT, ids=[c[1] for c in INIT])
def test_initialisation_follows_torchvision(path, network):
    """Each weight tensor starts with the spread torchvision gives it (the header comments
    of the .res files say which rule): equal std within 10% for large tensors, zero where
    torchvision's is zero."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = getattr(torchvision.models, network)().state_dict()
    ours = resdsl.build(stdlib(path), network=network, seed=0).state_dict()
    checked = 0
    for k, v in ref.items():
        if not v.is_floating_point() or "running" in k:
            continue
        std, tstd = ours[k].std().item(), v.std().item()
        if tstd == 0:
            assert std == 0 and torch.equal(ours[k], v), k  # zeros, ones
        elif v.numel() >= 2000:
            assert abs(std - tstd) / tstd < 0.1, (k, std, tstd)
            checked += 1
    assert checked > 5
