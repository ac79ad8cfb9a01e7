"""stdlib/swin.res and stdlib/maxvit.res against torchvision: the state_dict (buffers included)
loads with strict=True, parameter counts are equal, and outputs agree in eval and train mode
(stochastic depth drawing the same numbers after torch.manual_seed) at two input sizes.

Swin takes any input size, as torchvision's (it pads to a multiple of the window, and shifts an
axis only where the padded map holds more than one window, at run time): one built model runs at
64 (the last two stages fit in one window: no shift), 96, 100 (pads every stage and merges odd
maps) and 224; MaxViT is built for one size, as torchvision's
(`input_size`): 224 and 223, the smallest whose stages split into 7×7 partitions."""

import os

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from conftest import ROOT

import resdsl

SWIN = os.path.join(ROOT, "stdlib", "swin.res")
MAXVIT = os.path.join(ROOT, "stdlib", "maxvit.res")
TOL = dict(rtol=1e-4, atol=1e-5)


@torch.no_grad()
def _randomise(model, seed=0):
    """Random BN statistics, and random values where torchvision's init leaves a pattern the
    network could get away with ignoring (Swin V2's zeroed key bias, its logit scale)."""
    g = torch.Generator().manual_seed(seed)
    for k, p in model.named_parameters():
        if k.endswith(("qkv.bias", "logit_scale")):
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def _load(ref, path, network, **params):
    """Build `network` from the reference's state_dict: same keys (buffers included), dtypes, counts."""
    sd = ref.state_dict()
    gm = resdsl.build(path, network=network, weights=sd, **params)
    assert set(gm.state_dict()) == set(sd)  # same keys, buffers included
    for k, v in gm.state_dict().items():
        assert v.dtype == sd[k].dtype, k
    gm.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in gm.parameters()) == sum(p.numel() for p in ref.parameters())
    return gm


def _outputs(ref, gm, size, batch=2):
    """Outputs of `gm` and the reference at `size`, in eval and in train mode (same seed)."""
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    gm.eval()
    ref.eval()
    with torch.no_grad():
        want = ref(x)
        assert want.shape == (batch, 1000) and want.std() > 1e-3
        torch.testing.assert_close(gm(x), want, **TOL)
        gm.train()
        ref.train()
        torch.manual_seed(7)
        want = ref(x)
        torch.manual_seed(7)
        torch.testing.assert_close(gm(x), want, **TOL)


def _compare(ref, path, network, size, batch=2, **params):
    """Build `network` from the reference's state_dict and compare outputs at `size`."""
    gm = _load(ref, path, network, **params)
    _outputs(ref, gm, size, batch)
    return gm


SMALL = ["swin_t", "swin_v2_t"]
LARGE = ["swin_s", "swin_b", "swin_v2_s", "swin_v2_b"]


def _reference(name):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)()
    _randomise(ref)
    return ref


@pytest.fixture(scope="module", params=SMALL)
def swin(request):
    return request.param, _reference(request.param)


@pytest.mark.parametrize("sizes", [(64, 96, 100), pytest.param((224,), marks=pytest.mark.slow)],
                         ids=["64-100", "224"])
def test_swin_state_dict_and_outputs(swin, sizes):
    """One built model at several input sizes (64: the last two stages fit one window, no shift
    there; 100: every stage padded, odd maps merged)."""
    name, ref = swin
    gm = _load(ref, SWIN, name)
    assert not any("mask" in k for k in gm.state_dict())  # the shift mask is computed in forward
    for size in sizes:
        _outputs(ref, gm, size, batch=1 if size == 224 else 2)


def test_swin_takes_no_image_size():
    with pytest.raises(resdsl.ResdslError):
        resdsl.graph(SWIN, network="swin_t", image=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_large_swins_state_dict_and_outputs(name):
    _compare(_reference(name), SWIN, name, 64)


@pytest.mark.parametrize("name", LARGE)
def test_large_swins_names_shapes_and_counts(name):
    with torch.device("meta"):
        ref = getattr(torchvision.models, name)()
    gm = resdsl.build(SWIN, network=name, device="meta")
    assert {k: tuple(v.shape) for k, v in gm.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert sum(p.numel() for p in gm.parameters()) == sum(p.numel() for p in ref.parameters())


def test_swin_buffers_match_torchvision(swin):
    """The buffers the .res fns compute are torchvision's (the same for every size of a version)."""
    name, ref = swin
    g = resdsl.graph(SWIN, network=name)
    consts = {n.path: n for n in g.nodes if n.op == "buffer"}
    checked = 0
    for k, v in ref.state_dict().items():
        if k.endswith(("relative_position_index", "relative_coords_table")):
            mine = consts[k]
            got = torch.tensor(mine.attrs["_flat"], dtype=v.dtype).reshape(mine.attrs["_shape"])
            torch.testing.assert_close(got, v, rtol=1e-6, atol=1e-6, msg=k)
            checked += 1
    assert checked == (24 if "v2" in name else 12)


@pytest.mark.parametrize("size", [224, pytest.param(223, marks=pytest.mark.slow)])
def test_maxvit_state_dict_and_outputs(size):
    torch.manual_seed(0)
    ref = torchvision.models.maxvit_t(input_size=(size, size))
    _randomise(ref)
    gm = _compare(ref, MAXVIT, "maxvit_t", size, batch=1, image=size)
    idx = ref.state_dict()["blocks.0.layers.0.layers.window_attention.attn_layer.1.relative_position_index"]
    assert torch.equal(gm.get_buffer("blocks.0.layers.0.layers.window_attention.attn_layer.1.relative_position_index"),
                       idx)


def test_maxvit_refuses_a_size_that_does_not_partition():
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph(MAXVIT, network="maxvit_t", image=192)
    assert e.value.kind == "shape"


# Small configurations of the same definitions through the other targets: Swin's one export (ONNX,
# torch file) at two input sizes (28: shifted 9×9 and 6×6 padded maps of window 3; 44: 12×12, 6×6).
TINY = [(SWIN, "SwinTransformer", dict(embed=16, depths=[2, 2], heads=[1, 2], window=3, classes=10), (28, 44)),
        (SWIN, "SwinTransformer", dict(embed=16, depths=[2, 2], heads=[1, 2], window=4, classes=10, v2=True),
         (28, 44)),
        (MAXVIT, "MaxVit", dict(stem=8, channels=[16, 32], depths=[2, 1], head_dim=8, drop_path=0.1, partition=2,
                                image=32, classes=10), (32,))]


@pytest.mark.parametrize("path,network,params,sizes", TINY, ids=["swin", "swin_v2", "maxvit"])
def test_tiny_configs_through_onnx_and_the_torch_file(path, network, params, sizes, tmp_path):
    import importlib.util
    gm = resdsl.build(path, network=network, seed=0, **params).eval()
    model = resdsl.to_onnx(path, network=network, seed=0, **params)
    sess = ort.InferenceSession(model.SerializeToString())
    f = tmp_path / "net_file.py"
    f.write_text(resdsl.to_python(path, network=network, **params))
    spec = importlib.util.spec_from_file_location("net_file", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = getattr(mod, network)(seed=0).eval()
    assert list(net.state_dict()) == list(gm.state_dict())
    for size in sizes:
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            want = gm(x)
            torch.testing.assert_close(net(x), want)
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0], want.numpy(),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("v2", [False, True], ids=["swin", "swin_v2"])
def test_tiny_swin_against_torchvision_at_several_sizes(v2):
    """torchvision's SwinTransformer in the same tiny configuration: at 12 the padded maps are one
    window (no shift), at 28 and 44 several (shifted, masked), at 36 an odd map is merged, 30 is not
    a multiple of the patch size (floored by the patch embedding)."""
    from torchvision.models import swin_transformer as tv
    extra = dict(block=tv.SwinTransformerBlockV2, downsample_layer=tv.PatchMergingV2) if v2 else {}
    window = 4 if v2 else 3
    torch.manual_seed(0)
    ref = tv.SwinTransformer([4, 4], 16, [2, 2], [1, 2], [window, window], num_classes=10, **extra)
    _randomise(ref)
    gm = _load(ref, SWIN, "SwinTransformer", embed=16, depths=[2, 2], heads=[1, 2], window=window, classes=10,
               v2=v2)
    for size in (12, 28, 30, 36, 44):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            torch.testing.assert_close(gm.eval()(x), ref.eval()(x), **TOL)


def test_swin_feature_info_is_timms():
    """The stages are channels last ([N, H, W, C]): channels and reductions as timm's Swin says."""
    import timm
    with torch.device("meta"):
        ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    gm = resdsl.build(SWIN, network="swin_t", device="meta")
    assert [(f["num_chs"], f["reduction"]) for f in gm.feature_info] == \
        [(f["num_chs"], f["reduction"]) for f in ref.feature_info]
