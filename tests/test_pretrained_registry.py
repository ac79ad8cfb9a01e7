"""The registry of published weights against what the installed torchvision and timm say,
and the preprocessing of each checkpoint against torchvision's `weights.transforms()` and
timm's `resolve_data_config` + `create_transform`."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import resdsl
from resdsl import pretrained
from resdsl.diagnostics import ResdslError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pretrained_registry", ROOT / "scripts" / "pretrained_registry.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


@pytest.fixture(scope="module")
def collected():
    return gen.collect()


def test_registry_is_what_torchvision_and_timm_publish(collected):
    reg = json.loads(pretrained.REGISTRY.read_text())
    assert reg["class_names"] == collected["class_names"] and reg["generated_with"] == collected["generated_with"]
    dropped = reg.get("dropped", {})
    for name, net in collected["networks"].items():
        kept = [e for e in net["tags"] if e["tag"] not in dropped.get(name, {})]
        if not kept:
            assert name in reg["without"] and name not in reg["networks"], name
            continue
        assert reg["networks"][name]["tags"] == kept, name  # every field of every tag, same order
        assert reg["networks"][name]["default"] in (net["default"], kept[0]["tag"]), name
        assert set(dropped.get(name, {})) <= {e["tag"] for e in net["tags"]}
    assert set(reg["networks"]) <= set(collected["networks"])
    for name, why in collected["without"].items():
        assert reg["without"][name] == why
    assert set(reg["networks"]) | set(reg["without"]) == set(resdsl.list_models())  # every network accounted for


def test_the_default_is_the_references_default():
    import torchvision
    assert resdsl.get_pretrained_cfg("resnet50").tag == torchvision.models.ResNet50_Weights.DEFAULT.name
    assert resdsl.get_pretrained_cfg("vit_h_14", True).tag == torchvision.models.ViT_H_14_Weights.DEFAULT.name
    import timm
    assert resdsl.get_pretrained_cfg("seresnet50").tag == timm.models.get_pretrained_cfg("seresnet50").tag


# a few tags of every kind, checked as the generator checks them all (scripts/pretrained_registry.py)
SAMPLE = [("resnet50", "IMAGENET1K_V2"), ("resnet50", "a1_in1k"), ("densenet121", "IMAGENET1K_V1"),
          ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1"), ("resmlp_12_224", "fb_in1k"), ("dpn68", "mx_in1k"),
          ("regnet_x_400mf", "IMAGENET1K_V2"), ("repvgg_a0", "rvgg_in1k")]


@pytest.mark.parametrize("name,tag", SAMPLE, ids=[f"{n}.{t}" for n, t in SAMPLE])
def test_sampled_tags_fit_the_resdsl_network(name, tag):
    entry = next(e for e in pretrained.registry_data()["networks"][name]["tags"] if e["tag"] == tag)
    assert gen.check_tag(name, entry) is None


@pytest.mark.slow
def test_every_tag_fits_and_every_drop_is_real(collected):
    dropped = pretrained.registry_data().get("dropped", {})
    for name, net in collected["networks"].items():
        for e in net["tags"]:
            assert gen.check_tag(name, e) == dropped.get(name, {}).get(e["tag"]), (name, e["tag"])


def test_names_tags_and_errors():
    pre = resdsl.list_pretrained()
    assert "resnet50.IMAGENET1K_V2" in pre and "resnet18.a1_in1k" in pre and len(pre) == len(set(pre))
    assert resdsl.list_pretrained("resnet50.*") == [f"resnet50.{e['tag']}" for e in
                                                    pretrained.registry_data()["networks"]["resnet50"]["tags"]]
    assert "seresnet50.a1_in1k" in resdsl.list_pretrained("resnet50")  # no wildcard: a substring
    assert resdsl.list_pretrained(["vit_b_16", "*_in22k_ft_in1k"]) == \
        [x for x in pre if x.startswith("vit_b_16.") or x.endswith("_in22k_ft_in1k")]
    assert resdsl.list_pretrained("resnet50.*", exclude="*_in1k") == ["resnet50.IMAGENET1K_V1",
                                                                      "resnet50.IMAGENET1K_V2"]
    assert resdsl.list_models("resnet5*", pretrained=True, include_tags=False) == ["resnet50"]
    cfg = resdsl.get_pretrained_cfg("resnet50.a1_in1k")
    assert cfg == resdsl.get_pretrained_cfg("resnet50", "a1_in1k") and hash(cfg)
    assert cfg.hf_hub_id == "timm/resnet50.a1_in1k" and cfg.filename == "model.safetensors"
    tv = resdsl.get_pretrained_cfg("resnet50", "imagenet1k_v1")  # tags match without case
    assert tv.url.endswith(f"resnet50-{tv.hash}.pth") and tv.top1 == 76.13 and tv.class_names[0] == "tench"
    with pytest.raises(ResdslError, match="has no weights tagged `nope`"):
        resdsl.get_pretrained_cfg("resnet50", "nope")
    with pytest.raises(ResdslError, match="no published weights for `res8`") as e:
        resdsl.create_model("res8", pretrained=True)
    assert e.value.kind == "weights"
    with pytest.raises(ResdslError, match="not a stdlib network with published weights") as e:
        resdsl.get_pretrained_cfg("resnet5O")
    assert "did you mean `resnet50`" in e.value.help
    with pytest.raises(ResdslError, match="does not fit the resdsl network"):
        resdsl.get_pretrained_cfg("convnext_tiny", "fb_in1k")
    with pytest.raises(ResdslError, match="either weights= or pretrained="):
        resdsl.create_model("resnet50", weights="x.pt", pretrained=True)


# ------------------------------------------------------------------ preprocessing
def _images():
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    out = []
    for h, w in ((300, 400), (257, 231), (500, 333)):
        arr = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
        out.append(Image.fromarray(arr))
    return out


TV_CASES = [("resnet50", "IMAGENET1K_V2"), ("convnext_tiny", "IMAGENET1K_V1"), ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1"),
            ("efficientnet_v2_s", "IMAGENET1K_V1"), ("regnet_x_400mf", "IMAGENET1K_V1")]


@pytest.mark.parametrize("name,tag", TV_CASES, ids=[f"{n}.{t}" for n, t in TV_CASES])
def test_transforms_equal_torchvision(name, tag):
    import torchvision
    ref = getattr(torchvision.models.get_model_weights(name), tag).transforms()
    mine = resdsl.transforms(name, tag)
    for img in _images():
        assert torch.equal(mine(img), ref(img))
        t = torchvision.transforms.functional.pil_to_tensor(img)
        assert torch.equal(mine(t), ref(t))  # uint8 tensors too
    size = ref.crop_size[0]
    assert resdsl.data_config(name, tag)["input_size"] == (3, size, size)
    assert math.floor(size / resdsl.data_config(name, tag)["crop_pct"]) == ref.resize_size[0]


TIMM_CASES = ["resnet50.a1_in1k", "dpn68.mx_in1k", "inception_resnet_v2.tf_in1k", "resnet50.tv2_in1k",
              "resmlp_12_224.fb_in1k"]


@pytest.mark.parametrize("name", TIMM_CASES)
def test_data_config_and_transforms_equal_timm(name):
    import timm
    from timm.data import create_transform, resolve_data_config
    for test_size in (False, True):
        want = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict(),
                                   use_test_size=test_size)
        assert resdsl.data_config(name, use_test_size=test_size) == want
    ref = create_transform(**resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict()))
    mine = resdsl.transforms(name)
    for img in _images():
        assert torch.equal(mine(img), ref(img))


def test_a_pretrained_model_carries_its_config(tmp_path, monkeypatch):
    """`data_config(model)` and timm's own `resolve_data_config(model=...)` read model.pretrained_cfg."""
    import timm
    cfg = resdsl.get_pretrained_cfg("resnet50.a1_in1k")
    model = torch.nn.Linear(1, 1)
    model.pretrained_cfg = cfg
    assert resdsl.data_config(model) == resdsl.data_config("resnet50.a1_in1k")
    assert timm.data.resolve_data_config(model=model) == resdsl.data_config(model)
    with pytest.raises(ResdslError, match="no pretrained_cfg"):
        resdsl.data_config(torch.nn.Linear(1, 1))
