"""Published weights of the stdlib networks: the registry, the download, the preprocessing.

The registry (`pretrained_registry.json`, package data, written by
scripts/pretrained_registry.py from the installed torchvision and timm) lists, for every stdlib
network whose reference publishes weights, each checkpoint as `network.tag`: torchvision's
`*_Weights` entries (URL with the sha256 prefix torch.hub checks) and timm's pretrained tags
(a Hugging Face Hub repository holding `model.safetensors`), with what is needed to use it:
classes, input size, mean and std, interpolation and crop, license, reported accuracy, and
the key renames and network parameters that make it load strictly into the resdsl network.

Downloads go through the libraries users already configure: `torch.hub.load_state_dict_from_url`
(hash checked; cache under TORCH_HOME) and `huggingface_hub.hf_hub_download` (cache under
HF_HOME; HF_HUB_OFFLINE, HF_ENDPOINT). A file already in either cache is used without a
request. See docs/api.md ("Pretrained weights").
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from .diagnostics import ResdslError, did_you_mean

REGISTRY = Path(__file__).resolve().parent / "pretrained_registry.json"


@lru_cache(maxsize=None)
def registry_data() -> dict:
    return json.loads(REGISTRY.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PretrainedCfg:
    """One published checkpoint of a stdlib network and how to use it.

    `source` is "torchvision" (`url`, whose file name carries the sha256 prefix `hash`) or
    "timm" (`hf_hub_id` and `filename` on the Hugging Face Hub). `renames` are (regex,
    replacement) rewrites of the checkpoint's keys into the resdsl network's names; `params`
    the network parameters the checkpoint needs (ViT's `image` for the 384-pixel weights).
    `to_dict()` gives timm's keys, so `timm.data.resolve_data_config(model=...)` reads it too."""
    network: str
    tag: str
    source: str
    reference: str
    url: str | None
    hash: str | None
    hf_hub_id: str | None
    filename: str | None
    num_classes: int
    class_set: str | None
    input_size: tuple
    test_input_size: tuple | None
    crop_pct: float
    test_crop_pct: float | None
    crop_mode: str
    interpolation: str
    mean: tuple
    std: tuple
    license: str | None
    top1: float | None
    top5: float | None
    num_params: int | None
    file_size_mb: float | None
    renames: tuple = ()
    params: tuple = ()
    recipe: str | None = None
    paper_ids: str | None = None

    @property
    def name(self) -> str:
        """`network.tag`, as `list_pretrained` gives it."""
        return f"{self.network}.{self.tag}"

    @property
    def network_params(self) -> dict:
        return dict(self.params)

    @property
    def class_names(self) -> tuple | None:
        """The names of the classes, in output order (ImageNet-1k: 'tench', 'goldfish', ...)."""
        if self.class_set is None:
            return None
        return tuple(registry_data()["class_names"][self.class_set])

    @property
    def accuracy(self) -> dict:
        """The reference's reported ImageNet-1k accuracy (None where it reports none)."""
        return {"top1": self.top1, "top5": self.top5}

    def to_dict(self) -> dict:
        """timm's pretrained_cfg keys (architecture, tag, hf_hub_id, url, input_size, ...)."""
        out = {"architecture": self.network, "tag": self.tag, "hf_hub_id": self.hf_hub_id, "url": self.url,
               "hf_hub_filename": self.filename, "num_classes": self.num_classes, "input_size": self.input_size,
               "interpolation": self.interpolation, "crop_pct": self.crop_pct, "crop_mode": self.crop_mode,
               "mean": self.mean, "std": self.std, "license": self.license, "source": self.source}
        if self.test_input_size:
            out["test_input_size"] = self.test_input_size
        if self.test_crop_pct:
            out["test_crop_pct"] = self.test_crop_pct
        return out

    def get(self, key, default=None):
        """Dict-style access to :meth:`to_dict` (what timm's data config reads)."""
        return self.to_dict().get(key, default)

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __contains__(self, key):
        return key in self.to_dict()


_TUPLES = {"input_size", "test_input_size", "mean", "std"}


def _cfg(network: str, entry: dict) -> PretrainedCfg:
    kw = {}
    for f in fields(PretrainedCfg):
        if f.name == "network":
            continue
        v = entry.get("class_names" if f.name == "class_set" else f.name)
        if f.name in _TUPLES and v is not None:
            v = tuple(v)
        elif f.name == "renames":
            v = tuple(tuple(r) for r in v or ())
        elif f.name == "params":
            v = tuple(sorted((v or {}).items()))
        kw[f.name] = v
    return PretrainedCfg(network=network, **kw)


# ------------------------------------------------------------------ names and tags
def list_pretrained(pattern="", exclude=None) -> list[str]:
    """`network.tag` of every published checkpoint whose name matches `pattern`, as
    `timm.list_pretrained`: a shell wildcard (`resnet50.*`, `*_in1k`) or a list of them; a
    pattern without wildcards matches as a substring (as `list_models`)."""
    from .catalog import list_models
    return list_models(pattern, pretrained=True, exclude=exclude, include_tags=True)


def split_name(name: str):
    """`resnet50.IMAGENET1K_V2` -> ("resnet50", "IMAGENET1K_V2"); a name without a known
    network before its dot -> (name, None)."""
    if isinstance(name, str) and "." in name:
        base, tag = name.split(".", 1)
        if base in registry_data()["networks"]:
            return base, tag
    return name, None


def _network(name: str) -> dict:
    nets = registry_data()["networks"]
    if name in nets:
        return nets[name]
    from .catalog import index
    why = registry_data()["without"].get(name)
    if why is not None or name in index():
        raise ResdslError("weights", f"no published weights for `{name}`: {why or 'a generic network (it needs arguments)'}",
                          help="`resdsl weights` (resdsl.list_pretrained()) lists the networks that have them")
    hint = did_you_mean(name, nets)
    raise ResdslError("usage", f"`{name}` is not a stdlib network with published weights",
                      help=(hint + " " if hint else "") + "`resdsl weights` lists the networks that have them")


def get_pretrained_cfg(name: str, tag=None) -> PretrainedCfg:
    """The checkpoint `tag` of network `name` (`None`/`True`: the reference's default, as
    torchvision's DEFAULT or timm's first tag); `name` may also be `network.tag`."""
    if not isinstance(name, str):
        raise ResdslError("usage", f"a network name must be a string, got {type(name).__name__}")
    name, named_tag = split_name(name)
    if tag in (None, True):
        tag = named_tag
    elif named_tag is not None and named_tag != tag:
        raise ResdslError("usage", f"`{name}.{named_tag}` and tag `{tag}` disagree", help="give the tag once")
    net = _network(name)
    if tag in (None, True, "DEFAULT", "default"):
        tag = net["default"]
    if not isinstance(tag, str):
        raise ResdslError("usage", f"a tag must be a string or True, got {tag!r}")
    by_tag = {e["tag"]: e for e in net["tags"]}
    entry = by_tag.get(tag) or next((e for t, e in by_tag.items() if t.lower() == tag.lower()), None)
    if entry is None:
        dropped = registry_data().get("dropped", {}).get(name, {})
        if tag in dropped:
            raise ResdslError("weights", f"`{name}.{tag}` is published, but does not fit the resdsl network: "
                                         f"{dropped[tag]}", help="tags that fit: " + ", ".join(by_tag))
        hint = did_you_mean(tag, by_tag)
        raise ResdslError("usage", f"`{name}` has no weights tagged `{tag}`",
                          help=(hint + " " if hint else "") + "tags: " + ", ".join(by_tag) +
                          f" (`resdsl weights {name}`)")
    return _cfg(name, entry)


# ------------------------------------------------------------------ download
def load_pretrained(name: str, tag=None, progress: bool | None = None):
    """Download (or take from the cache) a published checkpoint; returns (state_dict with the
    resdsl network's names, :class:`PretrainedCfg`). `progress`: a progress bar (default: when
    stderr is a terminal). Errors (offline, bad hash) are `error[download]` with a way out."""
    cfg = get_pretrained_cfg(name, tag)
    if progress is None:
        progress = _isatty(sys.stderr)
    if cfg.source == "torchvision":
        state = _torch_hub(cfg, progress)
    else:
        state = _hf_hub(cfg, progress)
    return _rename(state, cfg), cfg


def _isatty(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _torch_hub(cfg: PretrainedCfg, progress: bool) -> dict:
    import urllib.error

    import torch
    where = os.path.join(torch.hub.get_dir(), "checkpoints")
    try:
        return torch.hub.load_state_dict_from_url(cfg.url, map_location="cpu", progress=progress,
                                                  check_hash=True, weights_only=True)
    except RuntimeError as e:
        if "invalid hash" not in str(e):
            raise
        raise ResdslError("download", f"the file downloaded for {cfg.name} from {cfg.url} is not the published one: "
                                      f"{e}; it was not kept",
                          help=f"try again (a proxy or a cut connection?); the cache ({where}) is unchanged") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise ResdslError("download", f"cannot download {cfg.name} from {cfg.url}: {reason}",
                          help=f"check the connection, or put the file in {where} "
                               f"(torch.hub's cache; TORCH_HOME moves it)") from None


def _hf_hub(cfg: PretrainedCfg, progress: bool) -> dict:
    try:
        import huggingface_hub
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        raise ResdslError("dependency", f"{cfg.name} is on the Hugging Face Hub: downloading it needs huggingface_hub",
                          help="pip install huggingface_hub") from None
    from huggingface_hub.utils import tqdm as hf_tqdm
    path = try_to_load_from_cache(cfg.hf_hub_id, cfg.filename)  # cached: no request at all
    if not isinstance(path, str):
        kw = {}
        if not progress:
            class _Silent(hf_tqdm):
                def __init__(self, *a, **k):
                    k["disable"] = True
                    super().__init__(*a, **k)
            kw["tqdm_class"] = _Silent
        try:
            path = hf_hub_download(cfg.hf_hub_id, cfg.filename, **kw)
        except Exception as e:  # noqa: BLE001 - offline, HTTP, connection, disk: all say the same to the user
            offline = huggingface_hub.constants.HF_HUB_OFFLINE
            cache = huggingface_hub.constants.HF_HUB_CACHE
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ResdslError(
                "download", f"cannot download {cfg.name} ({cfg.hf_hub_id}/{cfg.filename} from "
                            f"{huggingface_hub.constants.ENDPOINT})" + (": offline (HF_HUB_OFFLINE=1) and not in the "
                                                                       "cache" if offline else f": {msg}"),
                help=f"check the connection (HF_ENDPOINT for a mirror), or fill the cache ({cache}; HF_HOME moves "
                     f"it) on a machine that has one: huggingface-cli download {cfg.hf_hub_id} {cfg.filename}"
            ) from None
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ResdslError("download", f"the cached file of {cfg.name} ({path}) is not a readable safetensors file: {e}",
                          help="delete it and load again") from None


def _rename(state: dict, cfg: PretrainedCfg) -> dict:
    for pat, repl in cfg.renames:
        rx = re.compile(pat)
        state = {rx.sub(repl, k): v for k, v in state.items()}
    return state


def fit_state(graph, state: dict, cfg: PretrainedCfg) -> dict:
    """Check a downloaded state_dict against the network. Files saved before BatchNorm counted
    its batches (torchvision's 2017 weights) lack `num_batches_tracked`: it is 0, as torch's
    BatchNorm sets it when such a file is loaded."""
    import torch

    from .weights import check_state, expected
    for k in expected(graph):
        if k.endswith(".num_batches_tracked") and k not in state:
            state[k] = torch.tensor(0, dtype=torch.long)
    return check_state(graph, state, f"the weights {cfg.name}")


# ------------------------------------------------------------------ create_model(pretrained=...)
def build_pretrained(name: str, tag=None, *, device=None, checkpoint=None, **params):
    """The stdlib network `name` with the checkpoint `tag` loaded strictly (create_model's
    `pretrained=`): the network is built without initialising its weights (the checkpoint
    replaces them all); `model.pretrained_cfg` says which checkpoint it holds."""
    from .api import graph
    from .backends.torch.build import to_fx
    from .backends.torch.heads import attach
    cfg = get_pretrained_cfg(name, tag)
    g = graph(cfg.network, **{**cfg.network_params, **params})
    state, _ = load_pretrained(cfg.network, cfg.tag)
    state = fit_state(g, state, cfg)
    gm = to_fx(g, device="meta", checkpoint=checkpoint)
    want = gm.state_dict()
    state = {k: v if v.dtype == want[k].dtype else v.to(want[k].dtype) for k, v in state.items()}
    gm.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in list(gm.parameters()) + list(gm.buffers())):  # a buffer outside the state_dict
        gm = to_fx(g, checkpoint=checkpoint, weights=state)
    if device is not None:
        gm = gm.to(device)
    gm = attach(gm, g)  # the interface the network declares (forward_features, reset_classifier, ...)
    gm.pretrained_cfg = cfg
    return gm


# ------------------------------------------------------------------ preprocessing
_DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def _cfg_of(model_or_name, tag=None):
    if isinstance(model_or_name, str):
        return get_pretrained_cfg(model_or_name, tag)
    if isinstance(model_or_name, PretrainedCfg):
        return model_or_name
    cfg = getattr(model_or_name, "pretrained_cfg", None)
    if cfg is None:
        raise ResdslError("usage", f"{type(model_or_name).__name__} has no pretrained_cfg, so no preprocessing",
                          help='give a network name (data_config("resnet50")), or build the model with '
                               'create_model(..., pretrained=True)')
    return cfg


def data_config(model_or_name, tag=None, *, use_test_size: bool = False) -> dict:
    """The eval preprocessing of a checkpoint, with timm's keys: input_size, interpolation,
    mean, std, crop_pct, crop_mode. `model_or_name`: a model from `create_model(...,
    pretrained=...)` (its `pretrained_cfg`), a network name (`resnet50`, `resnet50.a1_in1k`)
    or a :class:`PretrainedCfg`. `use_test_size`: timm's test size and crop, where published."""
    cfg = _cfg_of(model_or_name, tag)
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    out = {k: get(k) for k in _DATA_KEYS}
    if use_test_size and get("test_input_size"):
        out["input_size"] = tuple(get("test_input_size"))
    if use_test_size and get("test_crop_pct"):
        out["crop_pct"] = get("test_crop_pct")
    out["input_size"], out["mean"], out["std"] = tuple(out["input_size"]), tuple(out["mean"]), tuple(out["std"])
    out["crop_mode"] = out["crop_mode"] or "center"
    return out


def transforms(model_or_name, tag=None, *, use_test_size: bool = False):
    """The eval preprocessing as a torchvision transform: resize the shorter side to
    floor(size / crop_pct), centre-crop `size`, to float in [0, 1], normalise. Takes a PIL
    image or a uint8/float tensor [..., C, H, W]; equals torchvision's `weights.transforms()`
    and timm's `create_transform(**resolve_data_config(...))` for the same checkpoint."""
    try:
        from torchvision import transforms as T
    except ImportError:
        raise ResdslError("dependency", "resdsl.transforms needs torchvision", help="pip install torchvision") from None
    cfg = data_config(model_or_name, tag, use_test_size=use_test_size)
    size = cfg["input_size"][-1]
    scale = math.floor(size / cfg["crop_pct"])
    mode = T.InterpolationMode(cfg["interpolation"])
    if cfg["crop_mode"] == "squash":
        resize = T.Resize((scale, scale), interpolation=mode, antialias=True)
    elif cfg["crop_mode"] == "center":
        resize = T.Resize(scale, interpolation=mode, antialias=True)
    else:
        raise ResdslError("usage", f"crop_mode {cfg['crop_mode']!r} is not supported", help="center or squash")
    return T.Compose([resize, T.CenterCrop(size), _ToFloat(), T.Normalize(cfg["mean"], cfg["std"])])


class _ToFloat:
    """A PIL image or an integer tensor -> a float tensor in [0, 1] (a float tensor unchanged),
    as torchvision's ImageClassification preset does."""

    def __call__(self, img):
        import torch
        from torchvision.transforms import functional as F
        if not isinstance(img, torch.Tensor):
            img = F.pil_to_tensor(img)
        return F.convert_image_dtype(img, torch.float)

    def __repr__(self):
        return "ToFloat()"


# ------------------------------------------------------------------ `resdsl weights`
def _size(cfg: PretrainedCfg) -> str:
    if cfg.file_size_mb:
        return f"{cfg.file_size_mb:.1f} MB"
    if cfg.num_params:
        return f"~{cfg.num_params * 4 / 1e6:.1f} MB"  # float32 parameters (timm states no file size)
    return "?"


def _table(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def weights_table(name: str | None = None) -> str:
    """The text of `resdsl weights [NAME | NAME.TAG]`."""
    reg = registry_data()
    if not name:
        rows = [["network", "tags", "default", "sources"]]
        for n, net in sorted(reg["networks"].items()):
            src = sorted({e["source"] for e in net["tags"]})
            rows.append([n, str(len(net["tags"])), net["default"], ", ".join(src)])
        return _table(rows) + f"{len(reg['networks'])} networks with published weights; `resdsl weights NAME` " \
                              "lists the tags of one\n"
    base, tag = split_name(name)
    if tag is not None:
        cfg = get_pretrained_cfg(base, tag)
        acc = (f"top-1 {cfg.top1:.3f}%, top-5 {cfg.top5:.3f}% (ImageNet-1k, as {cfg.source} reports it)"
               if cfg.top1 is not None else f"not stated by {cfg.source}")
        where = cfg.url if cfg.source == "torchvision" else f"https://huggingface.co/{cfg.hf_hub_id} ({cfg.filename})"
        lines = [("name", cfg.name + ("  (default)" if reg["networks"][base]["default"] == cfg.tag else "")),
                 ("reference", cfg.reference), ("download", where)]
        if cfg.hash:
            lines.append(("sha256 prefix", cfg.hash))
        lines += [("classes", f"{cfg.num_classes}" + (f" ({cfg.class_set})" if cfg.class_set else "")),
                  ("accuracy", acc), ("license", cfg.license or "not stated"),
                  ("parameters", f"{cfg.num_params:,}" if cfg.num_params else "?"), ("size", _size(cfg))]
        d = data_config(cfg)
        lines += [("input size", "x".join(map(str, d["input_size"]))),
                  ("preprocess", f"resize {math.floor(d['input_size'][-1] / d['crop_pct'])} ({d['interpolation']}), "
                                 f"center crop {d['input_size'][-1]}, mean {list(d['mean'])}, std {list(d['std'])}")]
        if cfg.params:
            lines.append(("network params", ", ".join(f"{k}={v}" for k, v in cfg.params)))
        if cfg.recipe:
            lines.append(("recipe", cfg.recipe))
        w = max(len(k) for k, _ in lines)
        return "".join(f"{k.ljust(w)}  {v}\n" for k, v in lines)
    net = _network(base)
    rows = [["tag", "source", "classes", "input", "top-1", "top-5", "license", "size"]]
    for e in net["tags"]:
        cfg = _cfg(base, e)
        mark = "*" if e["tag"] == net["default"] else ""
        rows.append([cfg.tag + mark, cfg.source, str(cfg.num_classes), str(cfg.input_size[-1]),
                     f"{cfg.top1:.3f}" if cfg.top1 is not None else "-", f"{cfg.top5:.3f}" if cfg.top5 is not None else "-",
                     cfg.license or "-", _size(cfg)])
    out = _table(rows) + f"* default: create_model({base!r}, pretrained=True); another: pretrained=\"TAG\"\n"
    dropped = reg.get("dropped", {}).get(base, {})
    by_why = {}
    for t, why in sorted(dropped.items()):
        by_why.setdefault(why, []).append(t)
    for why, tags in by_why.items():
        out += f"not loadable into the resdsl network: {', '.join(tags)}: {why}\n"
    return out
