"""IR -> ONNX ModelProto, built with ``onnx.helper`` straight from the IR (no torch exporter).

* Graph inputs and outputs carry the ``.res`` value names (``x``, ``out``); initializers
  carry the dotted ``.res`` parameter names (``layer1.0.conv1.weight``); every other
  tensor is named after the IR value it holds (``layer1_0_conv1``).
* Inference form: ``dropout`` / ``drop_path`` vanish; BatchNorm uses its running
  statistics, and is folded into the convolution in front of it when that convolution
  feeds nothing else (``fold_bn=False`` keeps every BatchNormalization, so every
  initializer is then exactly the state_dict entry of the same name).
* Axes left symbolic in the ``.res`` input stay symbolic (``dim_param`` ``N``, ``H``);
  reshapes copy them from the input at run time.
* Shared weights (``loop n shared``, tied instances) are stored once.
* Lowering is table driven: :data:`LOWERINGS` maps an op name to a function
  ``fn(b: Builder, node, inputs) -> [output tensor names]``; :func:`lowering` registers one
  (a second registration for one op is an error), :func:`no_lowering` marks an op that has
  no ONNX form, with the reason.

The graph assembly (:class:`Builder`, :data:`LOWERINGS`, :func:`lowering`) is in
:mod:`builder`; the per-op lowerings are in :mod:`ops` (tensor ops) and
:mod:`layers` (ops with parameters, whole layers). This module is the entry point
(:func:`to_onnx_model`, :func:`add_value_info`, :func:`check_opset`) and re-exports those
names. Imports go one way: this module -> :mod:`layers` -> :mod:`ops` ->
:mod:`builder`.

Supported opsets: :data:`OPSET_MIN` .. :data:`OPSET_MAX` (default :data:`OPSET_DEFAULT`).
"""
from __future__ import annotations

from ...diagnostics import ResdslError
from ...ir.graph import Graph, eval_form
from . import layers, ops, ops_dynamic, ops_quantize, ops_recurrent, ops_sdpa, ops_ssm  # noqa: F401 (importing them registers the lowerings)
from .builder import (  # noqa: F401 (lowering, no_lowering: re-exported, the public names)
    EXTERNAL_MIN_TENSOR_BYTES,
    LOWERINGS,
    Builder,
    dim_name,
    elem_type,
    input_type,
    make_value_info,
    lowering,
    no_lowering,
)

OPSET_DEFAULT = 18
OPSET_MIN = 17
OPSET_MAX = 25
# ONNX files are one protobuf message, limited to 2 GiB: above this many bytes of
# weights, tensors go to a side file `<output>.data` (ONNX external data).
EXTERNAL_DATA_THRESHOLD = 2 ** 31 - 2 ** 26


def check_opset(opset) -> int:
    if opset is None:
        return OPSET_DEFAULT
    if not isinstance(opset, int) or isinstance(opset, bool) or not OPSET_MIN <= opset <= OPSET_MAX:
        raise ResdslError("usage", f"ONNX opset {opset} is not supported",
                          help=f"use an opset from {OPSET_MIN} to {OPSET_MAX} (the default is {OPSET_DEFAULT})")
    return opset


# ------------------------------------------------------------------ the model
def to_onnx_model(graph: Graph, seed: int | None = None, weights: dict | None = None,
                  opset: int | None = None, fold_bn: bool = True, doc: str | None = None, external=None,
                  value_info: bool = False):
    """Lower `graph` to an ``onnx.ModelProto`` in inference form.

    `weights` is a checked state_dict (dotted ``.res`` names -> tensors); None uses the
    initial weights of ``resdsl.build(..., seed=seed)``. `external` = (folder, location):
    every initializer of 1 KiB or more is written, as it is made, to ``folder/location``
    with onnx's external-data writer, and the model refers to it (``location`` relative
    to the .onnx file), so a model of any size costs its weights once in memory.
    `value_info`: store intermediate shapes (see :func:`add_value_info`)."""
    import onnx

    from ..._version import __version__
    opset = check_opset(opset)
    if weights is None:
        from ..torch.build import to_fx  # the weights of resdsl.build(..., seed=seed), not copied
        weights = {k: v.detach() for k, v in to_fx(graph, seed=seed).state_dict().items()}
    graph = eval_form(graph)  # outputs marked `training` (and the ops only they need) are left out
    h = onnx.helper
    b = Builder(graph, weights, opset, external)
    # reserve the interface names first: inputs, then outputs (unique), then parameters
    in_names = []
    for v in graph.inputs:
        nm = b.fresh(v.name)
        in_names.append(nm)
        b.env[v] = nm
    out_names = []
    for i, v in enumerate(graph.outputs):
        want = graph.output_names[i] if i < len(graph.output_names) else "out"
        nm = b.fresh(want)
        out_names.append(nm)
        if v not in b.preferred and v not in b.env:
            b.preferred[v] = nm
    b.used.update(graph.param_names())  # a value named like a bare parameter (`as alpha`) gets a suffix
    if fold_bn:
        b.fold = _bn_folds(graph)
    for n in graph.nodes:
        if n in b.skip:
            continue
        fn = LOWERINGS.get(n.op)
        if fn is None:
            where = f" (line {n.span.line})" if n.span is not None else ""
            raise ResdslError("unsupported", f"the onnx target has no lowering for op `{n.op}`{where}", n.span,
                              help="register one with @lowering(\"" + n.op + "\") in resdsl/backends/onnx/ops.py "
                                   "(tensor ops) or layers.py (layers), or use the torch target")
        b.node = n
        outs = fn(b, n, [b.env[v] for v in n.inputs])
        if len(outs) != len(n.outputs):
            raise AssertionError(f"lowering of {n.op} gave {len(outs)} outputs for {len(n.outputs)}")
        for v, o in zip(n.outputs, outs):
            b.env[v] = o
    b.node = None
    final_outs = []
    for v, nm in zip(graph.outputs, out_names):
        if b.env[v] != nm:
            b.emit("Identity", [b.env[v]], [nm])
        final_outs.append(nm)
    g_in = [make_value_info(h, nm, v, input_type(graph, v)) for nm, v in zip(in_names, graph.inputs)]
    g_out = [make_value_info(h, nm, v, elem_type(v.dtype)) for nm, v in zip(final_outs, graph.outputs)]
    model = b.model  # filled in place: make_graph / make_model would copy every initializer
    model.ir_version = _ir_version(opset)
    model.producer_name, model.producer_version = "resdsl", __version__
    model.doc_string = doc or f"network {graph.name}, generated by resdsl (inference form)"
    model.opset_import.append(h.make_opsetid("", opset))
    model.graph.name = graph.name
    model.graph.node.extend(b.nodes)
    model.graph.input.extend(g_in)
    model.graph.output.extend(g_out)
    if value_info:
        add_value_info(model, {nm: v for v, nm in b.env.items()})
    return model


def weights_nbytes(weights: dict) -> int:
    return sum(t.numel() * t.element_size() for t in weights.values())


def add_value_info(model, ir_names: dict | None = None):
    """Store every intermediate tensor's shape (``graph.value_info``, shown by Netron),
    inferred by ``onnx.shape_inference``. Axes it cannot name take the ``.res`` name of
    the IR value's axis (``H/4``; `ir_names`: tensor name -> IR value), so symbolic axes
    stay symbolic. Large initializers are set aside during inference: no copy of the
    weights is made. Returns `model`."""
    import onnx
    big = [(t, t.raw_data) for t in model.graph.initializer if len(t.raw_data) >= EXTERNAL_MIN_TENSOR_BYTES]
    try:
        for t, _ in big:
            t.ClearField("raw_data")
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - shapes are a convenience; the model is valid without them
        return model
    finally:
        for t, raw in big:
            t.raw_data = raw
    ir_names = ir_names or {}
    known = {v.name for v in model.graph.input} | {v.name for v in model.graph.output} | \
        {t.name for t in model.graph.initializer}
    del model.graph.value_info[:]
    for vi in inferred.graph.value_info:
        if vi.name in known:
            continue
        v = ir_names.get(vi.name)
        dims = vi.type.tensor_type.shape.dim
        if v is not None and len(dims) == len(v.shape):
            for d, ax in zip(dims, v.shape):
                if not d.HasField("dim_value") and (not d.dim_param or d.dim_param.startswith("unk__")):
                    if isinstance(ax.size, int):
                        d.dim_value = ax.size
                    else:
                        d.dim_param = dim_name(ax)
        for d in dims:  # an anonymous axis is left unnamed rather than numbered per run
            if d.dim_param.startswith("unk__"):
                d.ClearField("dim_param")
        model.graph.value_info.append(vi)
    return model


def _ir_version(opset: int) -> int:
    # the lowest IR version that knows this opset (older runtimes accept it more readily)
    import onnx
    return onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)], True)


def _bn_folds(graph: Graph) -> dict:
    """conv Node -> the bn Node that reads only its output, where every use of the conv's
    weights is followed by the same BatchNorm (so a shared conv folds once)."""
    users = graph.users()
    pairs, by_conv = {}, {}
    for n in graph.nodes:
        if n.op != "conv" or n.path is None:
            continue
        us = users.get(n.outputs[0], [])
        bn = us[0] if len(us) == 1 else None
        ok = bn is not None and bn.op == "bn" and bn.path is not None and len(bn.inputs) == 1
        by_conv.setdefault(n.path, set()).add(bn.path if ok else None)
        if ok:
            pairs[n] = bn
    bn_owner = {}
    for c, bn in pairs.items():
        bn_owner.setdefault(bn.path, set()).add(c.path)
    bn_uses = {}
    for n in graph.nodes:
        if n.op == "bn":
            bn_uses[n.path] = bn_uses.get(n.path, 0) + 1
    conv_uses = {}
    for n in graph.nodes:
        if n.op == "conv":
            conv_uses[n.path] = conv_uses.get(n.path, 0) + 1
    out = {}
    for c, bn in pairs.items():
        if by_conv[c.path] == {bn.path} and bn_owner[bn.path] == {c.path} and \
                bn_uses[bn.path] == conv_uses[c.path]:
            out[c] = bn
    return out
