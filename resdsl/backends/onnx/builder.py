"""The ONNX backend's graph assembly: :class:`Builder` (ONNX nodes, initializers and
constants, unique tensor names, reshapes that keep symbolic axes symbolic), the lowering
table :data:`LOWERINGS` with its :func:`lowering` decorator, and the small helpers shared by
the lowerings and the model (numpy conversion of weights, sizes, ONNX element types,
``value_info`` entries). The per-op lowerings are in :mod:`ops` and :mod:`layers`;
:mod:`export` is the entry point (:func:`to_onnx_model`) and imports this module, never the
other way round.
"""
from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np

from ...diagnostics import ResdslError
from ...ir import shapes as S
from ...ir.graph import Graph, Node
from ...ir.ops import Registry
from ...ir.ops.core import place

# initializers of at least this many bytes go to the external-data side file when there is one
EXTERNAL_MIN_TENSOR_BYTES = 1024

LOWERINGS = Registry("ONNX lowering")  # op -> fn(b, node, ins) -> list of output names


def lowering(*names):
    """Register `fn(b, node, ins) -> list of output names` as the lowering of ops `names`
    (a second registration for one op is an error naming both places)."""
    return LOWERINGS.register(*names)


def no_lowering(name: str, reason: str):
    """Mark op `name` as having no ONNX form, with the reason: exporting it is an error that gives
    the reason, and the op-table completeness test accepts the marker in place of a lowering."""
    if not reason.strip():
        raise ValueError(f"no_lowering({name!r}) needs the reason the op has no ONNX form")

    def marker(b, n, ins):
        where = f" (line {n.span.line})" if n.span is not None else ""
        raise ResdslError("unsupported", f"op `{n.op}`{where} has no ONNX form: {reason}", n.span,
                          help="use the torch target for this network")
    marker.no_onnx_reason = reason
    caller = sys._getframe(1)
    marker.declared_at = place(caller.f_code.co_filename, caller.f_lineno)
    return LOWERINGS.register(name)(marker)


# ------------------------------------------------------------------ builder
def _create(folder: str, location: str) -> None:
    """Create the side file as every output is created, mode 0666 & ~umask (onnx's writer
    would make it 0600); an existing file keeps its mode."""
    import os
    if location and os.path.basename(location) == location and location not in (".", ".."):
        os.close(os.open(os.path.join(folder, location), os.O_WRONLY | os.O_CREAT, 0o666))


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
        t = self._tensor(name, to_numpy(tensor))
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
            if not self.ext_size:
                _create(folder, location)
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
            raise ResdslError("unsupported", f"the onnx target cannot reshape {sizes_str(in_sizes)} to "
                              f"{sizes_str(out_sizes)}: several axes of unknown size", self.span,
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


def to_numpy(t):
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


def shape_sizes(v) -> list:
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


def sizes_str(sizes) -> str:
    return "[" + ", ".join(str(s) for s in sizes) + "]"


def dim_name(ax) -> str:
    size = ax.size
    if isinstance(size, S.Size) and len(size.terms) == 1:
        (mono, c), = size.terms.items()
        if len(mono) == 1 and c == 1:
            return mono[0]
    return str(size).replace(" ", "")


def make_value_info(helper, name: str, v, elem_type):
    dims = [a.size if isinstance(a.size, int) else dim_name(a) for a in v.shape]
    return helper.make_tensor_value_info(name, elem_type, dims)


def input_type(graph: Graph, v):
    """An input read only by embeddings, `positions` (or as the frame index of `resfield`) holds
    integer ids (int64, as torch wants them), also when `select` first picks out one field's ids
    per embedding (AutoInt)."""
    from onnx import TensorProto
    if v.dtype.startswith("float") and _ids_only(graph.users(), v):
        return TensorProto.INT64
    return elem_type(v.dtype)


def _ids_only(users, v) -> bool:
    nodes = [n for n in users.get(v, []) if n is not None]
    return bool(nodes) and all(n.op in ("embedding", "positions")
                               or (n.op == "resfield" and n.inputs[0] is not v)
                               or (n.op == "select" and all(_ids_only(users, o) for o in n.outputs))
                               for n in nodes)


def elem_type(dtype: str):
    from onnx import TensorProto
    return {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64,
            "int32": TensorProto.INT32, "bool": TensorProto.BOOL}.get(dtype, TensorProto.FLOAT)
