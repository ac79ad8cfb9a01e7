"""Generate resdsl/pretrained_registry.json: the published checkpoints of every stdlib network
whose reference (torchvision or timm, same network name) publishes weights.

    python scripts/pretrained_registry.py            # rewrite the registry (checks every tag: slow)
    python scripts/pretrained_registry.py --check    # exit 1 if the committed file differs

What it reads, from the installed libraries only (nothing is downloaded):
- torchvision: each `*_Weights` entry of a builder named like the stdlib network: URL, hash
  (the sha256 prefix in the file name, which torch.hub checks), categories, preprocessing
  (`weights.transforms`), accuracy (`meta["_metrics"]`), parameter count and file size;
- timm: each pretrained tag of a model named like the stdlib network: Hugging Face Hub id
  (`model.safetensors`), preprocessing, number of classes, license.

Each candidate tag is then checked: the reference network built for that tag (on the meta
device: no memory) must have exactly the parameter names and shapes of the resdsl network
built with the tag's parameters. A tag that fails, and a stdlib network whose name no
reference publishes weights for, go to "without" with the reason.

tests/test_pretrained_registry.py compares the committed file with `collect()` (the metadata)
and checks a few tags with `check_tag`; the full check is marked slow."""
from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resdsl" / "pretrained_registry.json"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# torchvision's densenet loader rewrites the keys of its (LuaTorch-era) checkpoints
# (torchvision.models.densenet._load_state_dict; timm's densenet applies the same filter):
# `denselayer1.norm.1.weight` -> `denselayer1.norm1.weight`. A rename that finds nothing is harmless.
DENSENET_RENAME = (r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$",
                   r"\1\2")
# torchvision's vision_transformer builders set image_size from the weights (meta["min_size"]);
# the stdlib's VisionTransformer calls it `image`.
VIT_IMAGE_PARAM = "image"
CLASSES_PARAM = "classes"
# torchvision's googlenet() and inception_v3() turn on transform_input when they load their
# weights (the checkpoints expect inputs re-normalised from ImageNet's mean and std to 0.5)
TRANSFORM_INPUT = ("googlenet", "inception_v3")
# licenses torchvision names by URL
LICENSE_IDS = {"https://github.com/facebookresearch/SWAG/blob/main/LICENSE": "cc-by-nc-4.0"}
# torchvision states no license for the other weights; timm labels the same files bsd-3-clause
# (e.g. timm's resnet50.tv_in1k), the license of torchvision itself
TORCHVISION_LICENSE = "bsd-3-clause"


def stdlib_networks() -> list[str]:
    """The networks `create_model` builds by name (the generic ones, such as ResNet, need arguments)."""
    sys.path.insert(0, str(ROOT))
    from resdsl.catalog import list_models
    return list_models()


def _rounded(x, digits=6):
    return tuple(round(float(v), digits) for v in x)


def crop_pct_for(crop: int, resize: int) -> float:
    """A crop_pct with which timm's floor(crop / crop_pct) gives exactly `resize`."""
    pct = round(crop / resize, 4)
    for _ in range(200):
        got = math.floor(crop / pct)
        if got == resize:
            return pct
        pct = round(pct + (1e-4 if got > resize else -1e-4), 4)
    raise ValueError(f"no crop_pct for crop {crop}, resize {resize}")


# ------------------------------------------------------------------ torchvision
def torchvision_tags(name: str) -> tuple[list[dict], str | None]:
    import torchvision
    from torchvision.transforms import InterpolationMode
    if name not in torchvision.models.list_models(module=torchvision.models):
        return [], None
    weights = torchvision.models.get_model_weights(name)
    out = []
    for w in weights:
        kw = dict(w.transforms.keywords)
        crop, resize = int(kw["crop_size"]), int(kw.get("resize_size", 256))
        interp = kw.get("interpolation", InterpolationMode.BILINEAR).value
        meta = w.meta
        file_name = w.url.rsplit("/", 1)[1]
        m = re.search(r"-([a-f0-9]+)\.", file_name)
        params = {}
        if name.startswith("vit_") and meta["min_size"][0] != 224:  # swin.res takes any size
            params[VIT_IMAGE_PARAM] = int(meta["min_size"][0])
        if name in TRANSFORM_INPUT:  # the factory sets transform_input=True with these weights
            params["transform_input"] = True
        metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
        lic = meta.get("license")
        out.append({
            "tag": w.name, "source": "torchvision",
            "reference": f"torchvision.models.{type(w).__name__}.{w.name}",
            "url": w.url, "file_name": file_name, "hash": m.group(1) if m else None,
            "hf_hub_id": None, "filename": None,
            # vgg16's IMAGENET1K_FEATURES has no categories (its classifier weights are NaN):
            # num_classes 0, a headless checkpoint, which check_tag drops
            "num_classes": len(meta["categories"] or ()),
            "class_names": "imagenet-1k" if len(meta["categories"] or ()) == 1000 else None,
            "input_size": [3, crop, crop], "test_input_size": None,
            "crop_pct": crop_pct_for(crop, resize), "test_crop_pct": None,
            "crop_mode": "center", "interpolation": interp,
            "mean": list(_rounded(kw.get("mean", IMAGENET_MEAN))), "std": list(_rounded(kw.get("std", IMAGENET_STD))),
            "license": LICENSE_IDS.get(lic, lic) if lic else TORCHVISION_LICENSE,
            "top1": metrics.get("acc@1"), "top5": metrics.get("acc@5"),
            "num_params": meta.get("num_params"), "file_size_mb": meta.get("_file_size"),
            "renames": [list(DENSENET_RENAME)] if name.startswith("densenet") else [],
            "params": params, "recipe": meta.get("recipe"),
        })
    return out, weights.DEFAULT.name


# ------------------------------------------------------------------ timm
def timm_tags(name: str) -> tuple[list[dict], str | None]:
    import timm
    from timm.models import get_pretrained_cfg
    tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{name}.*") if t.split(".", 1)[0] == name]
    if not tags:
        return [], None
    out = []
    for tag in tags:
        c = get_pretrained_cfg(f"{name}.{tag}").to_dict()
        nc = int(c.get("num_classes", 1000))
        params = {CLASSES_PARAM: nc} if nc not in (1000, 0) else {}
        test = c.get("test_input_size")
        out.append({
            "tag": tag, "source": "timm", "reference": f"timm {name}.{tag}",
            "url": None, "file_name": None, "hash": None,
            "hf_hub_id": c.get("hf_hub_id"), "filename": c.get("hf_hub_filename") or "model.safetensors",
            "num_classes": nc, "class_names": "imagenet-1k" if nc == 1000 else None,
            "input_size": list(c["input_size"]), "test_input_size": list(test) if test else None,
            "crop_pct": c.get("crop_pct", 0.875), "test_crop_pct": c.get("test_crop_pct"),
            "crop_mode": c.get("crop_mode", "center"), "interpolation": c.get("interpolation", "bicubic"),
            "mean": list(_rounded(c.get("mean", IMAGENET_MEAN), 17)), "std": list(_rounded(c.get("std", IMAGENET_STD), 17)),
            "license": c.get("license"), "top1": None, "top5": None,
            "num_params": _timm_params(name, nc), "file_size_mb": None,
            "renames": [list(DENSENET_RENAME)] if name.startswith("densenet") else [],
            "params": params, "recipe": c.get("origin_url"), "paper_ids": c.get("paper_ids"),
        })
    default = get_pretrained_cfg(name).tag
    return out, default


def _why_none(name: str) -> str:
    import timm
    import torchvision
    if name in torchvision.models.list_models():
        return f"torchvision's {name} publishes no weights"
    if name in timm.list_models(name):
        return f"timm's {name} has no pretrained tag"
    return "no torchvision or timm network of this name (the stdlib follows its paper or the authors' code)"


@functools.lru_cache(maxsize=None)
def _timm_params(name: str, num_classes: int) -> int:
    """timm's parameter count of the network (built on the meta device)."""
    import timm
    import torch
    with torch.device("meta"):
        m = timm.create_model(name, pretrained=False, num_classes=num_classes)
    return sum(p.numel() for p in m.parameters())


def collect() -> dict:
    """Every candidate tag of every stdlib network, with its metadata (no checking)."""
    import timm
    import torchvision
    from torchvision.models import ResNet50_Weights
    networks, without = {}, {}
    for name in stdlib_networks():
        tv, tv_default = torchvision_tags(name)
        tm, tm_default = timm_tags(name)
        if not tv and not tm:
            without[name] = _why_none(name)
            continue
        networks[name] = {"default": tv_default or tm_default, "tags": tv + tm}
    return {
        "format": 1,
        "generated_with": {"torchvision": torchvision.__version__.split("+")[0], "timm": timm.__version__},
        "class_names": {"imagenet-1k": list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])},
        "networks": networks,
        "without": without,
    }


# ------------------------------------------------------------------ checking a tag
def reference_shapes(name: str, entry: dict) -> dict:
    """Parameter names -> shapes of the reference network built for this tag (meta device)."""
    import torch
    if entry["source"] == "torchvision":
        import torchvision
        kw = {"image_size": entry["params"][VIT_IMAGE_PARAM]} \
            if VIT_IMAGE_PARAM in entry["params"] and name.startswith("vit_") else {}
        try:
            with torch.device("meta"):
                m = torchvision.models.get_model(name, weights=None, **kw)
        except Exception:  # noqa: BLE001 - regnet computes its widths with tensors: not on meta
            m = torchvision.models.get_model(name, weights=None, **kw)
    else:
        import timm
        with torch.device("meta"):
            m = timm.create_model(name, pretrained=False, num_classes=entry["num_classes"])
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def check_tag(name: str, entry: dict) -> str | None:
    """None when the reference's parameters are the resdsl network's; else the reason."""
    sys.path.insert(0, str(ROOT))
    import resdsl
    from resdsl.weights import expected
    if entry["num_classes"] == 0:
        return "a headless checkpoint (num_classes 0): no classifier weights to load strictly"
    try:
        want = reference_shapes(name, entry)
    except Exception as e:  # noqa: BLE001
        return f"the reference does not build: {e}"
    got = expected(resdsl.graph(name, **entry["params"]))
    if want == got:
        return None
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        return (f"the reference's parameter names differ ({len(missing)} not in resdsl, e.g. "
                f"{missing[:2]}; {len(extra)} only in resdsl, e.g. {extra[:2]})")
    bad = sorted(k for k in want if want[k] != got[k])
    return f"shapes differ at {len(bad)} parameters, e.g. {bad[0]}: {want[bad[0]]} vs {got[bad[0]]}"


def build(check: bool = True) -> dict:
    data = collect()
    if not check:
        return data
    for name in list(data["networks"]):
        net = data["networks"][name]
        kept, dropped = [], {}
        for entry in net["tags"]:
            why = check_tag(name, entry)
            if why is None:
                kept.append(entry)
            else:
                dropped[entry["tag"]] = why
        if dropped:
            data.setdefault("dropped", {})[name] = dropped
        if not kept:
            reasons = sorted(set(dropped.values()))
            data["without"][name] = f"the reference's checkpoints do not fit: {reasons[0]}"
            del data["networks"][name]
            continue
        net["tags"] = kept
        if net["default"] not in {e["tag"] for e in kept}:
            net["default"] = kept[0]["tag"]
    return data


def dump(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed registry differs")
    args = ap.parse_args(argv)
    text = dump(build())
    if args.check:
        same = OUT.read_text() == text
        print("pretrained registry up to date" if same else f"{OUT} differs: run scripts/pretrained_registry.py")
        return 0 if same else 1
    OUT.write_text(text)
    data = json.loads(text)
    n = sum(len(v["tags"]) for v in data["networks"].values())
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data['networks'])} networks, {n} tags; "
          f"{len(data['without'])} networks without weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
