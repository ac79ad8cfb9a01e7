"""`resdsl.create_model`: a network by name with timm's keywords (`pretrained`, `num_classes`,
`in_chans`, `features_only`, `out_indices`, `drop_path_rate`) and its model interface
(resdsl/backends/torch/heads.py). See docs/api.md, "Networks by name".

Weights come from `weights=` (a checkpoint path or a state_dict) or, with `pretrained`, from
`resdsl.pretrained.load_pretrained`; both take the same road: every key is loaded strictly,
except the classifier's when it does not fit (a new head for another number of classes, said
in a warning), and the first convolution's, adapted as timm does when `in_chans` differs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .diagnostics import ResdslError

log = logging.getLogger("resdsl")

# network parameters that `drop_path_rate=` and `num_classes=` set, in the order looked for
DROP_PATH_PARAMS = ("drop_path_rate", "drop_path", "stochastic_depth")
CLASSES_PARAMS = ("num_classes", "classes")


def create_model(name, pretrained=False, num_classes=None, in_chans=None, features_only=False, out_indices=None,
                 drop_path_rate=None, weights=None, *, seed=None, device=None, rename=(), checkpoint=None,
                 **params):
    from . import api
    from ._gc import paused
    from .backends.torch import heads as H
    from .backends.torch.build import to_fx
    from .elaborate.elaborator import elaborate, network_params
    from .ir import interface as I

    _check_args(num_classes, in_chans, drop_path_rate, pretrained, weights, out_indices, features_only)
    if pretrained not in (False, None) and isinstance(name, str) and "\n" not in name:
        from .pretrained import build_pretrained, get_pretrained_cfg
        cfg = get_pretrained_cfg(name, None if pretrained is True else pretrained)  # also "resnet50.a1_in1k"
        if (num_classes in (None, cfg.num_classes) and in_chans is None and not features_only
                and drop_path_rate is None):  # the checkpoint as published: built on meta, loaded once
            model = build_pretrained(cfg.network, cfg.tag, device=device, checkpoint=checkpoint, **params)
            return model
        name, pretrained, params = cfg.network, cfg.tag, {**cfg.network_params, **params}
    with paused():
        program, network = api.load_program(name)
        names = network_params(program, network)
        overrides = dict(params)
        reset_to = None
        if drop_path_rate is not None:
            key = next((k for k in DROP_PATH_PARAMS if k in names), None)
            if key is None:
                raise ResdslError("usage", f"network `{network or name}` has no drop-path parameter "
                                           f"({', '.join(DROP_PATH_PARAMS)})",
                                  help="its parameters: " + ", ".join(names))
            overrides[key] = float(drop_path_rate)
        if num_classes is not None and not features_only:
            key = next((k for k in CLASSES_PARAMS if k in names), None)
            if key is not None and num_classes > 0:
                if key in overrides and overrides[key] != num_classes:
                    raise ResdslError("usage", f"num_classes={num_classes} and {key}={overrides[key]} disagree",
                                      help="give one of them")
                overrides[key] = num_classes
            else:
                reset_to = num_classes
        g = elaborate(program, network, overrides, input_channels=in_chans)
    iface = I.interface(g)
    state, cfg, source = _source(name, network, pretrained, weights, rename)
    if features_only:
        if iface is None or not iface.features:
            raise ResdslError("usage", f"network `{g.name}` declares no feature stages, so features_only has "
                                       "nothing to return", help="add `@features PATH, ...` to the network "
                                                                 "(docs/language.md, Annotations)")
        info = I.feature_info(g, iface)
        idx = H.take_indices(len(info), out_indices)
        vals = I.feature_values(g, iface)
        pruned = I.prune(g, [vals[i] for i in idx], [info[i]["module"] for i in idx])
        model = H.as_feature_extractor(to_fx(pruned, seed=seed, device=device, checkpoint=checkpoint),
                                       H.FeatureInfo(info, idx))
    else:
        model = H.attach(to_fx(g, seed=seed, device=device, checkpoint=checkpoint), g)
        if reset_to is not None:
            if iface is None or iface.classifier is None:
                raise ResdslError("usage", f"network `{g.name}` declares no classifier, so num_classes cannot "
                                           "set it", help="add `@classifier PATH` to the network, or set its "
                                                          "own parameter (" + ", ".join(names) + ")")
            model.reset_classifier(reset_to)
    if state is not None:
        for k in model.state_dict():  # files saved before BatchNorm counted its batches (torchvision 2017)
            if k.endswith(".num_batches_tracked") and k not in state:
                import torch
                state[k] = torch.tensor(0, dtype=torch.long)
        _load_into(model, g, iface, state, source, in_chans, features_only)
    if cfg is not None:
        model.pretrained_cfg = cfg
    return model


def _check_args(num_classes, in_chans, drop_path_rate, pretrained, weights, out_indices, features_only):
    for what, v in (("num_classes", num_classes), ("in_chans", in_chans)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (0 if what == "num_classes"
                                                                                   else 1)):
            raise ResdslError("usage", f"{what} must be a {'non-negative' if what == 'num_classes' else 'positive'} "
                                       f"int, got {v!r}")
    if drop_path_rate is not None and (isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float))
                                       or not 0 <= drop_path_rate < 1):
        raise ResdslError("usage", f"drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}")
    if not (pretrained is None or isinstance(pretrained, bool) or (isinstance(pretrained, str) and pretrained)):
        raise ResdslError("usage", f"pretrained must be True, False or a tag, got {pretrained!r}",
                          help="e.g. pretrained=True, or a tag from resdsl.list_pretrained()")
    if pretrained and weights is not None:
        raise ResdslError("usage", "give either weights= or pretrained=, not both")
    if out_indices is not None and not features_only:
        raise ResdslError("usage", "out_indices picks the stages of features_only=True",
                          help="pass features_only=True as well")


def _source(name, network, pretrained, weights, rename):
    """(normalized state_dict or None, pretrained_cfg or None, what to call it in messages)."""
    from .weights import normalize, read_checkpoint
    if pretrained:
        if network is None or not isinstance(name, str) or name != network:
            raise ResdslError("usage", f"pretrained= needs a stdlib network name, got {str(name)[:60]!r}",
                              help="e.g. create_model(\"resnet50\", pretrained=True); for a file, pass weights=")
        try:
            from .pretrained import load_pretrained
        except ImportError:
            raise ResdslError("usage", "this build of resdsl has no registry of pretrained weights",
                              help="pass weights=PATH (a checkpoint) instead") from None
        state, cfg = load_pretrained(network, None if pretrained is True else pretrained)
        tag = "" if pretrained is True else f".{pretrained}"
        return normalize(state, rename, f"the pretrained weights of {network}{tag}"), cfg, f"{network}{tag}"
    if weights is None:
        return None, None, None
    if isinstance(weights, (str, Path)):
        return normalize(read_checkpoint(str(weights)), rename, str(weights)), None, str(weights)
    return normalize(weights, rename, "the weights"), None, "the weights"


def _load_into(model, g, iface, state, source, in_chans, features_only):
    """Load `state` (a normalized state_dict of the whole network) into `model`: strictly, except
    a classifier that does not fit (left as initialised, said in a warning) and first
    convolutions adapted to `in_chans`."""
    from .backends.torch.heads import adapt_input_conv
    from .weights import check_state, expected
    want = expected(g)
    own = model.state_dict()
    state = dict(state)
    skipped = []
    if iface is not None and iface.classifier is not None:
        node = next(n for n in g.nodes if n.path == iface.classifier and n.params)
        for local in node.params:
            k = f"{node.path}.{local}"
            if features_only or k not in own:  # no classifier in the model (features_only, num_classes=0)
                state.pop(k, None)
                want.pop(k, None)
                continue
            want[k] = tuple(own[k].shape)
            if k not in state or tuple(state[k].shape) != want[k]:
                skipped.append((k, tuple(state[k].shape) if k in state else None, want[k]))
                state.pop(k, None)
                want.pop(k)
    if in_chans is not None:
        for n in g.nodes:
            k = f"{n.path}.weight"
            if n.op == "conv" and n.inputs and n.inputs[0] in g.inputs and k in state and k in want:
                w = state[k]
                if tuple(w.shape) != want[k] and tuple(w.shape[:1] + w.shape[2:]) == want[k][:1] + want[k][2:]:
                    state[k] = adapt_input_conv(in_chans, w)
    checked = check_state(g, state, source, want=want)
    merged = {k: (checked[k] if k in checked else own[k]) for k in own}
    model.load_state_dict(merged, strict=True)
    if skipped:
        parts = [f"{k} {list(s)} (the model's is {list(w)})" if s is not None else f"{k} (absent)"
                 for k, s, w in skipped]
        log.warning("%s: new classifier `%s` for %d classes; skipped %s", source, iface.classifier,
                    model.num_classes, ", ".join(parts))
