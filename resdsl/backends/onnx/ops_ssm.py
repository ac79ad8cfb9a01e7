"""ONNX lowering of `selective_scan` (resdsl/ir/ops/ssm.py): the decays exp(delta a) and the
drives delta b u of every step, [N, D, L, S], computed at once (Mul, Exp); the recurrence
h_t = decay_t h_{t-1} + drive_t a ``Scan`` over L whose body is one Mul and one Add (the graph
stays the same size for any L, and L may be symbolic); y = sum_s c h (Mul, ReduceSum) + d u."""
from __future__ import annotations

from onnx import TensorProto
from onnx import helper as h

from .builder import lowering
from .ops import reduce_axes


def _body():
    """The Scan body: state h [N, D, S], scanned inputs decay_t, drive_t [N, D, S] -> (h, h)."""
    f = TensorProto.FLOAT
    ins = [h.make_tensor_value_info(nm, f, None) for nm in ("h_prev", "decay_t", "drive_t")]
    outs = [h.make_tensor_value_info(nm, f, None) for nm in ("h", "h_t")]
    nodes = [h.make_node("Mul", ["decay_t", "h_prev"], ["decayed"]),
             h.make_node("Add", ["decayed", "drive_t"], ["h"]),
             h.make_node("Identity", ["h"], ["h_t"])]
    return h.make_graph(nodes, "selective_scan_step", ins, outs)


@lowering("selective_scan")
def _selective_scan(b, n, ins):
    u, delta, a, bm, cm = ins[:5]
    d = n.inputs[0].shape[1].size
    s = n.inputs[2].shape[1].size
    g = n.inputs[3].shape[1].size if len(n.inputs[3].shape) == 4 else 1
    if len(ins) == 7:
        delta = b.op("Add", [delta, b.op("Unsqueeze", [ins[6], b.ints([1], "axes")])])
    if n.attrs["delta_softplus"]:
        delta = b.op("Softplus", [delta])
    decay = b.op("Exp", [b.op("Mul", [b.op("Unsqueeze", [delta, b.ints([3], "axes")]),       # [N, D, L, 1]
                                      b.op("Unsqueeze", [a, b.ints([1], "axes")])])])        # [D, 1, S]
    du = b.op("Reshape", [b.op("Mul", [delta, u]), b.ints([0, g, d // g, -1, 1])])            # [N, G, E, L, 1]

    def per_group(t):  # [N, (G,) S, L] -> [N, G, 1, L, S]
        t = b.op("Reshape", [t, b.ints([0, g, s, -1])])
        return b.op("Unsqueeze", [b.op("Transpose", [t], perm=[0, 1, 3, 2]), b.ints([2], "axes")])

    drive = b.op("Reshape", [b.op("Mul", [du, per_group(bm)]), b.ints([0, d, -1, s])])          # [N, D, L, S]
    first = b.op("Slice", [b.op("Shape", [u]), b.ints([0], "start"), b.ints([1], "end")])
    h0 = b.op("Expand", [b.const(0.0), b.op("Concat", [first, b.ints([d, s], "state")], axis=0)])
    _, hs = b.emit("Scan", [h0, decay, drive], 2, body=_body(), num_scan_inputs=2,
                   scan_input_axes=[2, 2], scan_output_axes=[2])                                # [N, D, L, S]
    hs = b.op("Reshape", [hs, b.ints([0, g, d // g, -1, s])])                                  # [N, G, E, L, S]
    y = reduce_axes(b, "ReduceSum", b.op("Mul", [hs, per_group(cm)]), [4], False)             # [N, G, E, L]
    if len(ins) >= 6:
        y = b.op("Add", [b.op("Reshape", [y, b.ints([0, d, -1])]),
                         b.op("Mul", [u, b.op("Unsqueeze", [ins[5], b.ints([1], "axes")])])])
        return b.final("Identity", [y], n)
    return b.final("Reshape", [y, b.ints([0, d, -1])], n)
