"""ONNX lowerings of the constant and indexing ops (resdsl/ir/ops/index.py): a `buffer` is an
initializer (the state_dict's tensor when it is persistent, else its compile-time value),
`index` is Gather, `roll` is two Slices and a Concat."""
from __future__ import annotations

import numpy as np

from .builder import lowering

_NP = {"int64": np.int64, "float32": np.float32, "bool": np.bool_}


@lowering("buffer")
def _buffer(b, n, ins):
    if n.path in b.state:
        return [b.param(n, "")]
    if n.path not in b.inits:
        arr = np.array(n.attrs["_flat"], dtype=_NP[n.attrs["_dtype"]]).reshape(n.attrs["_shape"])
        b.add_init(n.path, arr)
    return [n.path]


@lowering("index")
def _index(b, n, ins):
    return b.final("Gather", list(ins), n, axis=n.attrs["dim"])


@lowering("roll")
def _roll(b, n, ins):
    x = ins[0]
    shape = n.inputs[0].shape
    for k, (s, d) in enumerate(zip(n.attrs["_shifts"], n.attrs["_dims"])):
        size = shape[d].size
        last = k == len(n.attrs["_dims"]) - 1
        if isinstance(size, int):
            cut = b.ints([(-s) % size], "roll")
        else:  # a symbolic axis: the cut (-s mod size) at run time
            length = b.op("Gather", [b.op("Shape", [x]), b.ints([d], "axis")], axis=0)
            cut = b.op("Mod", [b.ints([-s], "roll"), length])
        axes = b.ints([d], "axes")
        tail = b.op("Slice", [x, cut, b.ints([2 ** 63 - 1], "end"), axes])
        head = b.op("Slice", [x, b.ints([0], "start"), cut, axes])
        if last:
            return b.final("Concat", [tail, head], n, axis=d)
        x = b.op("Concat", [tail, head], axis=d)
    return [x]
