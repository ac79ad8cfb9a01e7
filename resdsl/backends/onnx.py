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
  ``fn(b: Builder, node, inputs) -> [output tensor names]``; :func:`lowering` registers one.

Supported opsets: :data:`OPSET_MIN` .. :data:`OPSET_MAX` (default :data:`OPSET_DEFAULT`).
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np

from .. import shapes as S
from ..diagnostics import ResdslError
from ..ir.graph import Graph, Node

OPSET_DEFAULT = 18
OPSET_MIN = 17
OPSET_MAX = 25
# ONNX files are one protobuf message, limited to 2 GiB: above this many bytes of
# weights, tensors go to a side file `<output>.data` (ONNX external data).
EXTERNAL_DATA_THRESHOLD = 2 ** 31 - 2 ** 26
EXTERNAL_MIN_TENSOR_BYTES = 1024

LOWERINGS: dict = {}


def lowering(*names):
    """Register `fn(b, node, ins) -> list of output names` as the lowering of ops `names`."""
    def deco(fn):
        for n in names:
            LOWERINGS[n] = fn
        return fn
    return deco


def check_opset(opset) -> int:
    if opset is None:
        return OPSET_DEFAULT
    if not isinstance(opset, int) or isinstance(opset, bool) or not OPSET_MIN <= opset <= OPSET_MAX:
        raise ResdslError("usage", f"ONNX opset {opset} is not supported",
                          help=f"use an opset from {OPSET_MIN} to {OPSET_MAX} (the default is {OPSET_DEFAULT})")
    return opset


# ------------------------------------------------------------------ builder
class Builder:
    """Collects ONNX nodes and initializers; hands out unique tensor names."""

    def __init__(self, graph: Graph, state: dict, opset: int, external=None):
        import onnx
        self.external = external  # (folder, location): tensors go to folder/location as they are made
        self.ext_size = 0
        self.onnx = onnx
        self.helper = onnx.helper
        self.graph = graph
        self.state = state
        self.opset = opset
        self.nodes = []
        self.model = onnx.ModelProto()  # initializers are written into it directly (no copies)
        self.inits = {}  # name -> TensorProto (inside self.model), in first-use order
        self.used = set()
        self.consts = {}  # (dtype, shape, bytes) -> name
        self.env = {}  # IR Value -> tensor name
        self.preferred = {}  # IR Value -> reserved graph output name
        self.fold = {}  # conv Node -> bn Node folded into it
        self.skip = set()  # bn nodes already emitted by their conv
        self.node = None  # the IR node being lowered (for errors and node names)

    # names
    def fresh(self, base: str) -> str:
        base = base or "t"
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def out_name(self, v) -> str:
        """The tensor name for IR value `v` (its graph output name when it is one)."""
        if v in self.preferred:
            return self.preferred.pop(v)
        return self.fresh(v.name)

    def tmp(self, suffix: str) -> str:
        base = self.node.outputs[0].name if self.node is not None and self.node.outputs else "t"
        return self.fresh(f"{base}/{suffix}")

    # nodes
    def emit(self, op_type: str, inputs, outputs, **attrs) -> list:
        """Add one ONNX node; `outputs` is a list of names or an int (that many temporaries)."""
        if isinstance(outputs, int):
            outputs = [self.tmp(op_type.lower()) for _ in range(outputs)]
        name = self.fresh(f"{outputs[0]}:{op_type}") if outputs else self.fresh(op_type)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs), name=name,
                                                **{k: v for k, v in attrs.items() if v is not None}))
        return list(outputs)

    def op(self, op_type: str, inputs, **attrs) -> str:
        """A one-output temporary node; returns its output name."""
        return self.emit(op_type, inputs, 1, **attrs)[0]

    def final(self, op_type: str, inputs, n: Node, **attrs) -> list:
        """The node that computes the IR node's outputs (named after the IR values)."""
        return self.emit(op_type, inputs, [self.out_name(v) for v in n.outputs], **attrs)

    # tensors
    def const(self, value, dtype=np.float32, name: str = "const") -> str:
        arr = np.array(value, dtype=dtype, order="C")  # keeps 0-d scalars 0-d
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            nm = self.fresh(f"const/{name}")
            self._tensor(nm, arr)
            self.consts[key] = nm
        return self.consts[key]

    def ints(self, values, name="shape") -> str:
        return self.const(list(values), np.int64, name)

    def param(self, n: Node, local: str = "") -> str:
        """The initializer holding parameter `local` of node `n` (added on first use)."""
        full = n.path if local == "" else f"{n.path}.{local}"
        full = dict(n.attrs.get("_tie", ())).get(local, full)  # a tied weight reads its owner's initializer
        if full not in self.inits:
            self.add_init(full, self.state[full])
        return full

    def add_init(self, name: str, tensor, doc: str | None = None):
        t = self._tensor(name, _to_numpy(tensor))
        if doc:
            t.doc_string = doc
        self.used.add(name)

    def _tensor(self, name: str, arr):
        external = self.external is not None and arr.nbytes >= EXTERNAL_MIN_TENSOR_BYTES
        # an external tensor is filled in a message of its own: the model's arena never
        # holds its bytes (protobuf does not give back a cleared field's memory)
        t = self.onnx.TensorProto() if external else self.model.graph.initializer.add()
        t.name = name
        t.data_type = self.helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        t.raw_data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        if external:
            # onnx's own writer, one tensor at a time: the model never holds all the weights
            from onnx.external_data_helper import save_external_data, set_external_data
            folder, location = self.external
            offset = -(-self.ext_size // 4096) * 4096  # page-aligned for memory mapping
            set_external_data(t, location, offset=offset)
            save_external_data(t, folder)
            t.ClearField("raw_data")
            self.ext_size = offset + arr.nbytes
            stored = self.model.graph.initializer.add()
            stored.CopyFrom(t)
            t = stored
        self.inits[name] = t
        return t

    # shapes
    def reshape(self, x: str, in_sizes, out_sizes, out: str | None = None) -> str:
        """Reshape tensor `x` (sizes `in_sizes`) to `out_sizes`, keeping symbolic axes symbolic.

        A symbolic output axis is copied from the input (Reshape's 0 at the same index, or
        a Shape slice, scaled when it is a fixed multiple such as H/2 of H); one may be -1."""
        in_sizes, out_sizes = list(in_sizes), list(out_sizes)
        plan, free = [], []  # plan item: int literal | ("dim", j, Fraction) | None (the -1)
        for i, s in enumerate(out_sizes):
            if isinstance(s, int):
                plan.append(s)
            elif i < len(in_sizes) and in_sizes[i] == s:
                plan.append(0)  # ONNX Reshape: 0 copies the input's size at the same index
            else:
                src = _source_dim(in_sizes, s)
                plan.append(src)
                if src is None:
                    free.append(i)
        if len(free) > 1:
            raise ResdslError("unsupported", f"the onnx target cannot reshape {_sizes_str(in_sizes)} to "
                              f"{_sizes_str(out_sizes)}: several axes of unknown size", self.span,
                              help="fix the symbolic input axes with numbers (--input-shape)")
        if not free:  # let the last computed axis be -1: fewer nodes
            dyn = [i for i, v in enumerate(plan) if isinstance(v, tuple)]
            if dyn:
                plan[dyn[-1]] = None
        pieces, run = [], []
        for v in plan:
            if not isinstance(v, tuple):
                run.append(-1 if v is None else v)
                continue
            if run:
                pieces.append(self.ints(run))
                run = []
            _, j, ratio = v
            d = self.op("Shape", [x], start=j, end=j + 1)
            if ratio.numerator != 1:
                d = self.op("Mul", [d, self.ints([ratio.numerator], "factor")])
            if ratio.denominator != 1:
                d = self.op("Div", [d, self.ints([ratio.denominator], "factor")])
            pieces.append(d)
        if run:
            pieces.append(self.ints(run))
        shape = pieces[0] if len(pieces) == 1 else self.op("Concat", pieces, axis=0)
        if out is None:
            return self.op("Reshape", [x, shape])
        return self.emit("Reshape", [x, shape], [out])[0]

    @property
    def span(self):
        return self.node.span if self.node is not None else None

    def unsupported(self, what: str, help: str | None = None):
        op = self.node.op if self.node is not None else "?"
        raise ResdslError("unsupported", f"the onnx target cannot lower `{op}`: {what}", self.span, help=help)


def _to_numpy(t):
    if isinstance(t, np.ndarray):
        arr = t
    else:
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        arr = t.contiguous().numpy()
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _sizes(v) -> list:
    return [a.size for a in v.shape]


def _source_dim(in_sizes, s):
    """("dim", j, r) when symbolic size `s` is r times input axis j (r a fixed fraction)."""
    for j, t in enumerate(in_sizes):
        if not isinstance(t, int) and t == s:
            return ("dim", j, Fraction(1))
    for j, t in enumerate(in_sizes):
        if isinstance(t, int) or len(t.terms) != 1 or len(s.terms) != 1:
            continue
        (mt, ct), = t.terms.items()
        (ms, cs), = s.terms.items()
        if mt == ms and mt != ():
            return ("dim", j, Fraction(cs) / Fraction(ct))
    return None


def _sizes_str(sizes) -> str:
    return "[" + ", ".join(str(s) for s in sizes) + "]"


def _dim_name(ax) -> str:
    size = ax.size
    if isinstance(size, S.Size) and len(size.terms) == 1:
        (mono, c), = size.terms.items()
        if len(mono) == 1 and c == 1:
            return mono[0]
    return str(size).replace(" ", "")


def _value_info(helper, name: str, v, elem_type):
    dims = [a.size if isinstance(a.size, int) else _dim_name(a) for a in v.shape]
    return helper.make_tensor_value_info(name, elem_type, dims)


def _input_type(graph: Graph, v):
    """An input read only by embeddings holds integer ids (int64, as torch wants them)."""
    from onnx import TensorProto
    users = [n for n in graph.users().get(v, []) if n is not None]
    if users and all(n.op == "embedding" for n in users) and v.dtype.startswith("float"):
        return TensorProto.INT64
    return _elem_type(v.dtype)


def _elem_type(dtype: str):
    from onnx import TensorProto
    return {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64,
            "int32": TensorProto.INT32, "bool": TensorProto.BOOL}.get(dtype, TensorProto.FLOAT)


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
    from .._version import __version__
    opset = check_opset(opset)
    if weights is None:
        from .torch_fx import to_fx  # the weights of resdsl.build(..., seed=seed), not copied
        weights = {k: v.detach() for k, v in to_fx(graph, seed=seed).state_dict().items()}
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
                              help="register one in resdsl/backends/onnx.py with @lowering(\"" + n.op + "\"), "
                                   "or use the torch target")
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
    g_in = [_value_info(h, nm, v, _input_type(graph, v)) for nm, v in zip(in_names, graph.inputs)]
    g_out = [_value_info(h, nm, v, _elem_type(v.dtype)) for nm, v in zip(final_outs, graph.outputs)]
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
    the IR value's axis (``H/4``; `ir_names`: tensor name -> IR value), so symbolic axes stay symbolic. Large initializers are
    set aside during inference: no copy of the weights is made. Returns `model`."""
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
                        d.dim_param = _dim_name(ax)
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


# ------------------------------------------------------------------ lowerings
@lowering("identity", "dropout", "drop_path")
def _pass(b, n, ins):
    return [ins[0]]


_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "HardSwish"}


@lowering(*_UNARY)
def _unary(b, n, ins):
    return b.final(_UNARY[n.op], ins, n)


@lowering("silu")
def _silu(b, n, ins):
    return b.final("Mul", [ins[0], b.op("Sigmoid", ins)], n)


@lowering("gelu")
def _gelu(b, n, ins):
    approx = n.attrs["approximate"]
    if b.opset >= 20:
        return b.final("Gelu", ins, n, approximate=approx)
    x = ins[0]
    if approx == "tanh":
        x3 = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [x3, b.const(0.044715)])]),
                             b.const(math.sqrt(2.0 / math.pi))])
        t = b.op("Tanh", [inner])
    else:
        t = b.op("Erf", [b.op("Mul", [x, b.const(1.0 / math.sqrt(2.0))])])
    half_x = b.op("Mul", [x, b.const(0.5)])
    return b.final("Mul", [half_x, b.op("Add", [t, b.const(1.0)])], n)


@lowering("leaky_relu")
def _leaky(b, n, ins):
    return b.final("LeakyRelu", ins, n, alpha=float(n.attrs["slope"]))


@lowering("scale")
def _scale(b, n, ins):
    return b.final("Mul", [ins[0], b.const(float(n.attrs["factor"]))], n)


@lowering("softmax")
def _softmax(b, n, ins):
    return b.final("Softmax", ins, n, axis=n.attrs["dim"])


def _pads(n: Node, nsp: int):
    a = n.attrs
    if a.get("_padding") == "same":
        tot = a["_pad_total"]
        begin = [t // 2 for t in tot]
        return begin + [t - bb for t, bb in zip(tot, begin)]
    p = a.get("_padding", a.get("padding", 0))
    p = (p,) * nsp if isinstance(p, int) else tuple(p)
    return list(p) + list(p)


def _tup(v, n):
    return [v] * n if isinstance(v, int) else list(v)


@lowering("conv")
def _conv(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    pads = _pads(n, nsp)
    x = ins[0]
    if a["padding_mode"] != "zeros" and any(pads):
        mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(a["padding_mode"])
        if mode is None:
            b.unsupported(f"padding_mode {a['padding_mode']!r}")
        if mode == "wrap" and b.opset < 19:  # no Pad mode `wrap` before opset 19: wrap with Slice + Concat
            for i in range(nsp):
                lo, hi, axis = pads[i], pads[nsp + i], 2 + i
                parts = []
                if lo:
                    parts.append(b.op("Slice", [x, b.ints([-lo], "starts"), b.ints([2 ** 62], "ends"),
                                                b.ints([axis], "axes")]))
                parts.append(x)
                if hi:
                    parts.append(b.op("Slice", [x, b.ints([0], "starts"), b.ints([hi], "ends"),
                                                b.ints([axis], "axes")]))
                x = b.op("Concat", parts, axis=axis) if len(parts) > 1 else x
        else:
            x = b.op("Pad", [x, b.ints([0, 0] + pads[:nsp] + [0, 0] + pads[nsp:], "pads")], mode=mode)
        pads = [0] * (2 * nsp)
    out_v = n.outputs
    bn = b.fold.get(n)
    if bn is not None:
        w, bias = _fold_bn(b, n, bn)
        out_v = bn.outputs
        b.skip.add(bn)
    else:
        w = b.param(n, "weight")
        bias = b.param(n, "bias") if "bias" in n.params else None
    inputs = [x, w] + ([bias] if bias is not None else [])
    outs = b.emit("Conv", inputs, [b.out_name(v) for v in out_v], kernel_shape=_tup(a["kernel"], nsp),
                  strides=_tup(a["stride"], nsp), pads=pads, dilations=_tup(a["dilation"], nsp),
                  group=a["groups"])
    if bn is not None:
        b.env[bn.outputs[0]] = outs[0]
    return outs


def _fold_bn(b, conv: Node, bn: Node):
    """Conv weights with the BatchNorm after them folded in (float64 arithmetic)."""
    wname, bname = f"{conv.path}.weight", f"{conv.path}.bias"
    if wname in b.inits:
        return wname, bname  # a shared conv+bn pair: folded once (_bn_folds folds a conv everywhere or nowhere)
    st = b.state
    w = _to_numpy(st[wname]).astype(np.float64)
    c = w.shape[0]
    cb = _to_numpy(st[bname]).astype(np.float64) if "bias" in conv.params else np.zeros(c)
    mean = _to_numpy(st[f"{bn.path}.running_mean"]).astype(np.float64)
    var = _to_numpy(st[f"{bn.path}.running_var"]).astype(np.float64)
    if "weight" in bn.params:
        gamma = _to_numpy(st[f"{bn.path}.weight"]).astype(np.float64)
        beta = _to_numpy(st[f"{bn.path}.bias"]).astype(np.float64)
    else:
        gamma, beta = np.ones(c), np.zeros(c)
    s = gamma / np.sqrt(var + float(bn.attrs["eps"]))
    note = f"with BatchNorm {bn.path} folded in (inference form)"
    b.add_init(wname, (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32), f"{wname} {note}")
    b.add_init(bname, ((cb - mean) * s + beta).astype(np.float32), f"{bname} {note}")
    return wname, bname


@lowering("conv_transpose")
def _convt(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    p = _tup(a["padding"], nsp)
    inputs = [ins[0], b.param(n, "weight")] + ([b.param(n, "bias")] if "bias" in n.params else [])
    return b.final("ConvTranspose", inputs, n, kernel_shape=_tup(a["kernel"], nsp),
                   strides=_tup(a["stride"], nsp), pads=p + p, output_padding=_tup(a["output_padding"], nsp),
                   dilations=_tup(a["dilation"], nsp), group=a["groups"])


@lowering("linear")
def _linear(b, n, ins):
    w = b.param(n, "weight")
    bias = b.param(n, "bias") if "bias" in n.params else None
    if len(n.inputs[0].shape) == 2:
        return b.final("Gemm", [ins[0], w] + ([bias] if bias else []), n, transB=1)
    wt = b.op("Transpose", [w], perm=[1, 0])
    if bias is None:
        return b.final("MatMul", [ins[0], wt], n)
    return b.final("Add", [b.op("MatMul", [ins[0], wt]), bias], n)


def _affine_or(b, n, local, shape, fill):
    if local in n.params:
        return b.param(n, local)
    return b.const(np.full(shape, fill), name=local)


@lowering("bn")
def _bn(b, n, ins):
    c = n.attrs["_c"]
    return b.final("BatchNormalization", [ins[0], _affine_or(b, n, "weight", (c,), 1.0),
                                          _affine_or(b, n, "bias", (c,), 0.0),
                                          b.param(n, "running_mean"), b.param(n, "running_var")],
                   n, epsilon=float(n.attrs["eps"]))


@lowering("gn")
def _gn(b, n, ins):
    # opset 18's GroupNormalization takes per-group scales; torch's are per channel:
    # normalise [N, G, rest] with InstanceNormalization, then apply the channel affine.
    a = n.attrs
    g, c = a["groups"], a["_c"]
    x = ins[0]
    y = b.op("Reshape", [x, b.ints([0, g, -1])])
    y = b.op("InstanceNormalization", [y, b.const(np.ones(g), name="ones"),
                                       b.const(np.zeros(g), name="zeros")], epsilon=float(a["eps"]))
    rank = len(n.inputs[0].shape)
    if "weight" not in n.params:
        return b.final("Reshape", [y, b.op("Shape", [x])], n)
    y = b.op("Reshape", [y, b.op("Shape", [x])])
    cshape = b.ints([c] + [1] * (rank - 2))
    w = b.op("Reshape", [b.param(n, "weight"), cshape])
    bias = b.op("Reshape", [b.param(n, "bias"), cshape])
    return b.final("Add", [b.op("Mul", [y, w]), bias], n)


@lowering("ln")
def _ln(b, n, ins):
    a = n.attrs
    shape = a["_shape"]
    inputs = [ins[0], _affine_or(b, n, "weight", shape, 1.0)]
    if "bias" in n.params:
        inputs.append(b.param(n, "bias"))
    return b.final("LayerNormalization", inputs, n, axis=-len(shape), epsilon=float(a["eps"]))


def _reduce_mean(b, x, axes, keepdims, n=None):
    return _reduce(b, "ReduceMean", x, axes, keepdims, n)


@lowering("rmsnorm")
def _rms(b, n, ins):
    eps = n.attrs["eps"]
    if eps is None:
        eps = float(np.finfo(np.float32).eps)  # torch.nn.RMSNorm's default
    x = ins[0]
    ms = _reduce_mean(b, b.op("Mul", [x, x]), [-1], True)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [ms, b.const(float(eps))])])])
    if "weight" not in n.params:
        return b.final("Mul", [x, inv], n)
    return b.final("Mul", [b.op("Mul", [x, inv]), b.param(n, "weight")], n)


@lowering("embedding")
def _emb(b, n, ins):
    from onnx import TensorProto
    ids = ins[0]
    v = n.inputs[0]
    if v in b.graph.inputs:
        is_int = _input_type(b.graph, v) == TensorProto.INT64
    else:
        is_int = v.dtype in ("int64", "int32")
    if not is_int:
        ids = b.op("Cast", [ids], to=TensorProto.INT64)
    return b.final("Gather", [b.param(n, "weight"), ids], n, axis=0)


@lowering("attention")
def _attention(b, n, ins):
    """torch.nn.MultiheadAttention (batch_first, self-attention) on [N, L, D]."""
    a = n.attrs
    d, h = a["_d"], a["heads"]
    hd = d // h
    x = ins[0]
    qkv = b.op("MatMul", [x, b.op("Transpose", [b.param(n, "in_proj_weight")], perm=[1, 0])])
    if "in_proj_bias" in n.params:
        qkv = b.op("Add", [qkv, b.param(n, "in_proj_bias")])
    q, k, v = b.emit("Split", [qkv, b.ints([d, d, d], "split")], 3, axis=2)
    heads = b.ints([0, 0, h, hd])
    q, k, v = (b.op("Transpose", [b.op("Reshape", [t, heads])], perm=[0, 2, 1, 3]) for t in (q, k, v))
    kt = b.op("Transpose", [k], perm=[0, 1, 3, 2])
    scores = b.op("Mul", [b.op("MatMul", [q, kt]), b.const(1.0 / math.sqrt(hd))])
    if a["causal"]:
        length = b.op("Shape", [x], start=1, end=2)
        square = b.op("Concat", [length, length], axis=0)
        from onnx import TensorProto
        neg = b.op("ConstantOfShape", [square],
                   value=b.helper.make_tensor("value", TensorProto.FLOAT, [1], [float("-inf")]))
        scores = b.op("Add", [scores, b.op("Trilu", [neg, b.ints([1], "k")], upper=1)])
    att = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
    merged = b.op("Reshape", [b.op("Transpose", [att], perm=[0, 2, 1, 3]), b.ints([0, 0, d])])
    y = b.op("MatMul", [merged, b.op("Transpose", [b.param(n, "out_proj.weight")], perm=[1, 0])])
    if "out_proj.bias" in n.params:
        return b.final("Add", [y, b.param(n, "out_proj.bias")], n)
    return b.final("Identity", [y], n)


@lowering("param")
def _param(b, n, ins):
    return [b.param(n, "")]


@lowering("scalar_mul")
def _smul(b, n, ins):
    return b.final("Mul", [ins[0], b.param(n, "")], n)


@lowering("layer_scale")
def _layer_scale(b, n, ins):
    rank = len(n.inputs[0].shape)
    ax = n.attrs["_axis"] % rank
    gamma = b.param(n, "gamma")
    if ax != rank - 1:
        gamma = b.op("Reshape", [gamma, b.ints([-1] + [1] * (rank - 1 - ax))])
    return b.final("Mul", [ins[0], gamma], n)


def _pool_common(n):
    a = n.attrs
    nsp = a["_nd"]
    k = _tup(a["kernel"], nsp)
    st = _tup(a["stride"] if a["stride"] is not None else a["kernel"], nsp)
    p = _tup(a["padding"], nsp)
    return nsp, k, st, p + p


@lowering("maxpool")
def _maxpool(b, n, ins):
    nsp, k, st, pads = _pool_common(n)
    return b.final("MaxPool", ins, n, kernel_shape=k, strides=st, pads=pads,
                   dilations=_tup(n.attrs["dilation"], nsp), ceil_mode=int(bool(n.attrs["ceil_mode"])))


@lowering("avgpool")
def _avgpool(b, n, ins):
    nsp, k, st, pads = _pool_common(n)
    return b.final("AveragePool", ins, n, kernel_shape=k, strides=st, pads=pads,
                   ceil_mode=int(bool(n.attrs["ceil_mode"])),
                   count_include_pad=int(bool(n.attrs["count_include_pad"])))


@lowering("adaptive_avgpool")
def _aavg(b, n, ins):
    a = n.attrs
    nsp = a["_nd"]
    size = _tup(a["size"], nsp)
    if all(s == 1 for s in size):
        return b.final("GlobalAveragePool", ins, n)
    in_sp = _sizes(n.inputs[0])[2:]
    if not all(isinstance(i, int) for i in in_sp):
        b.unsupported(f"adaptive pooling of the symbolic spatial size {_sizes_str(in_sp)} to {size}",
                      help="fix the spatial input axes with numbers (--input-shape), or use adaptive_avgpool(1)")
    if all(i % o == 0 for i, o in zip(in_sp, size)):
        k = [i // o for i, o in zip(in_sp, size)]
        return b.final("AveragePool", ins, n, kernel_shape=k, strides=k)
    # torch's windows: [floor(j*I/O), ceil((j+1)*I/O)) on each axis; a mean over a box is
    # the mean over one axis of the means over the other, so pool one axis at a time.
    x = ins[0]
    todo = [i for i, (isz, o) in enumerate(zip(in_sp, size)) if isz != o]
    for t, i in enumerate(todo):
        isz, o, axis = in_sp[i], size[i], 2 + i
        parts = []
        for j in range(o):
            lo, hi = (j * isz) // o, -((-(j + 1) * isz) // o)
            sl = b.op("Slice", [x, b.ints([lo], "starts"), b.ints([hi], "ends"), b.ints([axis], "axes")])
            parts.append(_reduce_mean(b, sl, [axis], True))
        if t == len(todo) - 1:
            return b.final("Concat", parts, n, axis=axis)
        x = b.op("Concat", parts, axis=axis)
    return b.final("Identity", [x], n)


@lowering("upsample")
def _upsample(b, n, ins):
    a = n.attrs
    rank = len(n.inputs[0].shape)
    scales = b.const([1.0, 1.0] + [float(a["scale"])] * (rank - 2), np.float32, "scales")
    mode = a["mode"]
    if mode == "nearest":
        kw = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "bicubic":
        kw = dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel", cubic_coeff_a=-0.75)
    else:  # linear, bilinear, trilinear (align_corners=False)
        kw = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
    return b.final("Resize", [ins[0], "", scales], n, **kw)


@lowering("pixel_shuffle")
def _pixel_shuffle(b, n, ins):
    return b.final("DepthToSpace", ins, n, blocksize=n.attrs["factor"], mode="CRD")


@lowering("flatten", "reshape")
def _reshape(b, n, ins):
    src, dst = _sizes(n.inputs[0]), _sizes(n.outputs[0])
    if n.op == "flatten" and len(src) >= 2 and n.attrs["start"] % len(src) == 1 and \
            n.attrs["end"] % len(src) == len(src) - 1:
        return b.final("Flatten", ins, n, axis=1)
    return [b.reshape(ins[0], src, dst, b.out_name(n.outputs[0]))]


@lowering("transpose")
def _transpose(b, n, ins):
    r = len(n.inputs[0].shape)
    perm = list(range(r))
    i, j = n.attrs["dim0"] % r, n.attrs["dim1"] % r
    perm[i], perm[j] = perm[j], perm[i]
    return b.final("Transpose", ins, n, perm=perm)


@lowering("permute")
def _permute(b, n, ins):
    return b.final("Transpose", ins, n, perm=list(n.attrs["dims"]))


@lowering("rearrange")
def _rearrange(b, n, ins):
    x = ins[0]
    sizes = _sizes(n.inputs[0])
    steps = list(n.attrs["_steps"])
    if not steps:
        return [x]
    for si, step in enumerate(steps):
        last = si == len(steps) - 1
        out = b.out_name(n.outputs[0]) if last else None
        if step[0] == "permute":
            perm = list(step[1])
            sizes = [sizes[i] for i in perm]
            x = b.emit("Transpose", [x], [out] if out else 1, perm=perm)[0]
            continue
        if step[0] == "unflatten":
            dim, fs = step[1], list(step[2])
            known = 1
            for f in fs:
                if f != -1:
                    known *= f
            fs = [S.truediv(sizes[dim], known) if f == -1 else f for f in fs]
            new = sizes[:dim] + fs + sizes[dim + 1:]
        else:  # flatten start..end
            s, e = step[1], step[2]
            prod = 1
            for v in sizes[s:e + 1]:
                prod = S.mul(prod, v)
            new = sizes[:s] + [prod] + sizes[e + 1:]
        x = b.reshape(x, sizes, new, out)
        sizes = new
    return [x]


@lowering("select")
def _select(b, n, ins):
    return b.final("Gather", [ins[0], b.const(n.attrs["index"], np.int64, "index")], n, axis=n.attrs["dim"])


@lowering("add")
def _add(b, n, ins):
    x = ins[0]
    for y in ins[1:-1]:
        x = b.op("Add", [x, y])
    return b.final("Add", [x, ins[-1]], n)


@lowering("mul")
def _mul(b, n, ins):
    return b.final("Mul", ins, n)


# tensor arithmetic (issue 11): op -> (ONNX op, where the scalar `value` goes)
_ARITH = {"sub": ("Sub", None), "div": ("Div", None), "shift": ("Add", "right"), "rsub": ("Sub", "left"),
          "div_scalar": ("Div", "right"), "rdiv": ("Div", "left")}


@lowering(*_ARITH)
def _arith(b, n, ins):
    kind, scalar = _ARITH[n.op]
    if scalar is None:
        return b.final(kind, ins, n)
    c = b.const(float(n.attrs["value"]))
    return b.final(kind, [c, ins[0]] if scalar == "left" else [ins[0], c], n)


@lowering("neg")
def _neg(b, n, ins):
    return b.final("Neg", ins, n)


@lowering("mean")
def _mean(b, n, ins):
    if len(ins) > 1:
        s = ins[0]
        for y in ins[1:]:
            s = b.op("Add", [s, y])
        return b.final("Div", [s, b.const(float(len(ins)))], n)
    d = n.attrs["dim"]
    axes = list(d) if isinstance(d, (list, tuple)) else [d]
    return _reduce_mean(b, ins[0], axes, bool(n.attrs["keepdim"]), n=n)


@lowering("concat")
def _concat(b, n, ins):
    return b.final("Concat", ins, n, axis=n.attrs["dim"] % len(n.inputs[0].shape))


@lowering("matmul")
def _matmul(b, n, ins):
    return b.final("MatMul", ins, n)


@lowering("split", "chunk")
def _split(b, n, ins):
    dim = n.attrs["dim"]
    sizes = [a.shape[dim].size for a in n.outputs]
    return b.final("Split", [ins[0], b.ints(sizes, "split")], n, axis=dim)


# ---- added for the architecture library (tier 2/3)
@lowering("scalar_add")
def _sadd(b, n, ins):
    return b.final("Add", [ins[0], b.param(n, "")], n)


@lowering("pad")
def _pad(b, n, ins):
    rank = len(n.inputs[0].shape)
    w = list(n.attrs["widths"])
    lo, hi = [0] * rank, [0] * rank
    for k in range(len(w) // 2):  # torch order: last axis first
        lo[rank - 1 - k], hi[rank - 1 - k] = w[2 * k], w[2 * k + 1]
    return b.final("Pad", [ins[0], b.ints(lo + hi, "pads"), b.const(float(n.attrs["value"]))], n,
                   mode="constant")


def _reduce_sum(b, x, axis):
    return b.op("ReduceSum", [x, b.ints([axis], "axes")], keepdims=1)


@lowering("l2norm")
def _l2norm(b, n, ins):
    x = ins[0]
    norm = b.op("Sqrt", [_reduce_sum(b, b.op("Mul", [x, x]), n.attrs["dim"])])
    return b.final("Div", [x, b.op("Max", [norm, b.const(float(n.attrs["eps"]))])], n)


@lowering("orthogonal")
def _orthogonal(b, n, ins):
    f, x = ins
    dot = _reduce_sum(b, b.op("Mul", [x, f]), n.attrs["dim"])
    nrm = _reduce_sum(b, b.op("Mul", [x, x]), n.attrs["dim"])
    coef = b.op("Div", [dot, b.op("Add", [nrm, b.const(float(n.attrs["eps"]))])])
    return b.final("Sub", [f, b.op("Mul", [coef, x])], n)


# ---- ops of the architecture library
def _reduce(b, op_type, x, axes, keepdims, n=None):
    """Reduce* with `axes` as an input where the opset wants it (ReduceSum from 13, the rest from 18)."""
    if op_type == "ReduceSum" or b.opset >= 18:
        ins, kw = [x, b.ints(axes, "axes")], {}
    else:
        ins, kw = [x], {"axes": list(axes)}
    if n is not None:
        return b.final(op_type, ins, n, keepdims=int(keepdims), **kw)
    return b.op(op_type, ins, keepdims=int(keepdims), **kw)


@lowering("pad")
def _pad(b, n, ins):
    w = list(n.attrs["widths"])
    rank = len(n.inputs[0].shape)
    begin, end = [0] * rank, [0] * rank
    for k in range(len(w) // 2):  # torch order: last axis first, (lo, hi) pairs
        begin[rank - 1 - k], end[rank - 1 - k] = w[2 * k], w[2 * k + 1]
    return b.final("Pad", [ins[0], b.ints(begin + end, "pads"), b.const(float(n.attrs["value"]), name="value")],
                   n, mode="constant")


@lowering("l2norm")
def _l2norm(b, n, ins):
    norm = _reduce(b, "ReduceL2", ins[0], [n.attrs["dim"]], True)
    return b.final("Div", [ins[0], b.op("Max", [norm, b.const(float(n.attrs["eps"]), name="eps")])], n)


@lowering("orthogonal")
def _orthogonal(b, n, ins):
    f, x = ins
    d = [n.attrs["dim"]]
    dot = _reduce(b, "ReduceSum", b.op("Mul", [x, f]), d, True)
    nrm = _reduce(b, "ReduceSum", b.op("Mul", [x, x]), d, True)
    coef = b.op("Div", [dot, b.op("Add", [nrm, b.const(float(n.attrs["eps"]), name="eps")])])
    return b.final("Sub", [f, b.op("Mul", [coef, x])], n)


@lowering("scalar_add")
def _sadd(b, n, ins):
    return b.final("Add", [ins[0], b.param(n, "")], n)


@lowering("ln2d")
def _ln2d(b, n, ins):
    (c,) = n.attrs["_shape"]
    y = b.op("Transpose", ins, perm=[0, 2, 3, 1])
    y = b.op("LayerNormalization", [y, _affine_or(b, n, "weight", (c,), 1.0), _affine_or(b, n, "bias", (c,), 0.0)],
             axis=-1, epsilon=float(n.attrs["eps"]))
    return b.final("Transpose", [y], n, perm=[0, 3, 1, 2])


@lowering("expand")
def _expand(b, n, ins):
    x, like = ins
    dims = set(n.attrs["dims"])
    like_sizes = _sizes(n.inputs[1])
    pieces, run = [], []
    for d in range(len(like_sizes)):
        s = like_sizes[d]
        if d not in dims or isinstance(s, int):
            run.append(s if d in dims else 1)  # 1 keeps x's own size (broadcasting)
            continue
        if run:
            pieces.append(b.ints(run))
            run = []
        pieces.append(b.op("Shape", [like], start=d, end=d + 1))
    if run:
        pieces.append(b.ints(run))
    shape = pieces[0] if len(pieces) == 1 else b.op("Concat", pieces, axis=0)
    return b.final("Expand", [x, shape], n)


@lowering("stack")
def _stack(b, n, ins):
    axes = b.ints([n.attrs["dim"]], "axes")
    return b.final("Concat", [b.op("Unsqueeze", [x, axes]) for x in ins], n, axis=n.attrs["dim"])


@lowering("sum")
def _sum(b, n, ins):
    d = n.attrs["dim"]
    axes = list(d) if isinstance(d, (list, tuple)) else [d]
    return _reduce(b, "ReduceSum", ins[0], axes, bool(n.attrs["keepdim"]), n=n)


@lowering("lstm")
def _lstm(b, n, ins):
    """ONNX LSTM; torch's gate order i, f, g, o becomes ONNX's i, o, f, c."""
    a = n.attrs
    dirs = ["_l0", "_l0_reverse"] if a["bidirectional"] else ["_l0"]

    def gates(name):
        i, f, g, o = np.split(_to_numpy(b.state[f"{n.path}.{name}"]), 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    w = np.stack([gates("weight_ih" + s) for s in dirs])
    r = np.stack([gates("weight_hh" + s) for s in dirs])
    if a["bias"]:
        bias = np.stack([np.concatenate([gates("bias_ih" + s), gates("bias_hh" + s)]) for s in dirs])
    else:
        bias = np.zeros((len(dirs), 8 * a["hidden"]), np.float32)
    x = b.op("Transpose", [ins[0]], perm=[1, 0, 2])  # [L, N, D]: onnxruntime has no batch-first LSTM
    y = b.op("LSTM", [x, b.const(w, name="lstm_W"), b.const(r, name="lstm_R"), b.const(bias, name="lstm_B")],
             hidden_size=a["hidden"], direction="bidirectional" if a["bidirectional"] else "forward")
    y = b.op("Transpose", [y], perm=[2, 0, 1, 3])  # [L, dirs, N, hidden] -> [N, L, dirs, hidden]
    return b.final("Reshape", [y, b.ints([0, 0, -1])], n)


@lowering("lstm")
def _lstm(b, n, ins):
    """torch.nn.LSTM (one layer, batch first) as ONNX LSTM. torch stacks the gates
    i, f, g, o; ONNX wants i, o, f, c: the initializers keep torch's names and layout, and
    Gather nodes (constant-folded by the runtime) reorder them."""
    a = n.attrs
    h, d = a["hidden"], a["_in"]
    sfx = ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",)
    order = b.ints([0, 3, 1, 2], "gate_order")

    def gates(local, cols):
        t = b.param(n, local)
        shape = [4, h] + ([cols] if cols else [])
        t = b.op("Gather", [b.op("Reshape", [t, b.ints(shape)]), order], axis=0)
        return b.op("Reshape", [t, b.ints([1, 4 * h] + ([cols] if cols else []))])

    def stack(parts):
        return parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=0)

    w = stack([gates("weight_ih" + s, d) for s in sfx])
    r = stack([gates("weight_hh" + s, h) for s in sfx])
    inputs = [b.op("Transpose", ins, perm=[1, 0, 2]), w, r]  # onnxruntime runs layout 0 only: [L, N, D]
    if a["bias"]:
        inputs.append(stack([b.op("Concat", [gates("bias_ih" + s, 0), gates("bias_hh" + s, 0)], axis=1)
                             for s in sfx]))
    y = b.emit("LSTM", inputs, 1, hidden_size=h,
               direction="bidirectional" if a["bidirectional"] else "forward")[0]  # [L, dirs, N, h]
    y = b.op("Transpose", [y], perm=[2, 0, 1, 3])
    return b.final("Reshape", [y, b.ints([0, 0, -1])], n)  # [N, L, dirs, h] -> [N, L, dirs * h]


# ---- added for issue 11: the new elementwise ops
_UNARY_11 = {"selu": "Selu", "softsign": "Softsign", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs"}


@lowering(*_UNARY_11)
def _unary_11(b, n, ins):
    return b.final(_UNARY_11[n.op], ins, n)


@lowering("relu6", "clamp", "hardtanh")
def _clip(b, n, ins):
    a = n.attrs
    lo, hi = {"relu6": (0.0, 6.0), "clamp": (a.get("min"), a.get("max")),
              "hardtanh": (a.get("min_val"), a.get("max_val"))}[n.op]
    bounds = ["" if v is None else b.const(float(v)) for v in (lo, hi)]  # "": that bound is absent
    while bounds and bounds[-1] == "":
        bounds.pop()
    return b.final("Clip", [ins[0]] + bounds, n)


@lowering("hardsigmoid")
def _hardsigmoid(b, n, ins):  # torch: relu6(x + 3) / 6
    return b.final("HardSigmoid", ins, n, alpha=1.0 / 6.0, beta=0.5)


@lowering("elu", "celu")
def _elu(b, n, ins):
    return b.final(n.op.capitalize(), ins, n, alpha=float(n.attrs["alpha"]))


def _softplus_of(b, x, beta=1.0, threshold=20.0):
    """torch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    bx = x if beta == 1.0 else b.op("Mul", [x, b.const(float(beta))])
    y = b.op("Softplus", [bx])
    if beta != 1.0:
        y = b.op("Div", [y, b.const(float(beta))])
    return b.op("Where", [b.op("Greater", [bx, b.const(float(threshold))]), x, y])


@lowering("softplus")
def _softplus(b, n, ins):
    y = _softplus_of(b, ins[0], n.attrs["beta"], n.attrs["threshold"])
    return b.final("Identity", [y], n)


@lowering("mish")
def _mish(b, n, ins):
    if b.opset >= 18:
        return b.final("Mish", ins, n)
    return b.final("Mul", [ins[0], b.op("Tanh", [_softplus_of(b, ins[0])])], n)


@lowering("logsigmoid")
def _logsigmoid(b, n, ins):  # log(sigmoid(x)) = -softplus(-x), without overflow
    return b.final("Neg", [b.op("Softplus", [b.op("Neg", ins)])], n)


@lowering("rsqrt")
def _rsqrt(b, n, ins):
    return b.final("Reciprocal", [b.op("Sqrt", ins)], n)


@lowering("prelu")
def _prelu(b, n, ins):
    rank = len(n.inputs[0].shape)
    slope = b.param(n, "weight")
    if n.attrs["num_parameters"] > 1 and rank > 2:  # one slope per channel (axis 1): [C, 1, ..]
        slope = b.op("Reshape", [slope, b.ints([-1] + [1] * (rank - 2))])
    return b.final("PRelu", [ins[0], slope], n)


@lowering("glu")
def _glu(b, n, ins):
    d = n.attrs["dim"]
    h = n.outputs[0].shape[d].size
    first, second = b.emit("Split", [ins[0], b.ints([h, h], "split")], 2, axis=d)
    return b.final("Mul", [first, b.op("Sigmoid", [second])], n)
