"""The op table: every primitive declared once, as one record (:class:`OpDef`), in the module
of its kind:

=================  ==========================================================================
:mod:`.conv`       conv, conv_transpose, pooling, upsample, pixel_shuffle
:mod:`.linear`     linear, embedding, matmul
:mod:`.attention`  attention, lstm
:mod:`.sdpa`       sdpa (attention of given q, k, v: no weights)
:mod:`.norm`       bn, gn, ln, ln2d, rmsnorm, l2norm
:mod:`.activation` relu ... softplus, prelu, glu, softmax, dropout, drop_path
:mod:`.arith`      add, mul, sub, div, the scalar forms, scale, mean, sum, orthogonal
:mod:`.params`     param, scalar_mul, scalar_add, layer_scale
:mod:`.shape`      identity, flatten, reshape, transpose, permute, rearrange, select, concat,
                   stack, split, chunk, pad, expand
:mod:`.elementwise_math`  floordiv, mod, pow, minimum, maximum, lt, le, gt, ge, eq, ne, where,
                   sin, cos, floor, ceil, arange
:mod:`.dynamic`    skip_gate, route, combine, vq, resfield (computation chosen per sample)
:mod:`.sizes`      unsqueeze, squeeze, pad_to_multiple, crop (size-1 axes, sizes at run time)
:mod:`.index`      buffer (compile-time tensors), index (gather), roll
:mod:`.recurrent`  lif, convlstm, reservoir (state carried across time steps)
:mod:`.quantize`   quantize (rounding to integers, straight-through gradient)
:mod:`.phase`      atan2 (the angle of a complex value given as two real parts)
:mod:`.ssm`        selective_scan (Mamba's selective state space scan, S6)
=================  ==========================================================================

Backends and passes look ops up in :data:`OPS`; passes test traits (``linear``,
``elementwise``, ``has_params``, ``stochastic``), not op names. What a record holds, and what
the backends register against it, is described in :mod:`.core` and docs/ops.md.
"""
# ruff: noqa: I001 (the kind modules are imported in the order of the table)
from __future__ import annotations

from .core import (  # noqa: F401 (the public names of the op table)
    ATTR_INIT,
    EPS,
    INIT_ARGS,
    INIT_KINDS,
    MAX_DIM,
    MAX_FLOAT,
    MAX_PARAM_ELEMENTS,
    NONNEG,
    OPS,
    POS,
    PROB,
    REQUIRED,
    TORCH_INIT,
    AttrDef,
    Legal,
    OpDef,
    OpError,
    ParamSpec,
    RegistrationError,
    Registry,
    Regroup,
    broadcast,
    channel_axis,
    check_init,
    elementwise_axes,
    op,
    whole_bundle,
)

# the kinds, in the order of the table: importing a module declares its ops
from . import conv, linear, attention, norm, activation, arith, params, shape, sizes  # noqa: F401
from . import elementwise_math  # noqa: F401
from . import dynamic  # noqa: F401 (skip_gate, route, combine, vq, resfield)
from . import sdpa  # noqa: F401
from . import index  # noqa: F401  (buffer, index, roll)
from . import recurrent  # noqa: F401 (lif, convlstm, reservoir)
from . import quantize  # noqa: F401 (quantize: rounding, straight-through)
from . import phase  # noqa: F401 (atan2)
from . import ssm  # noqa: F401 (selective_scan: Mamba's S6)
from .arith import arith_broadcast  # noqa: F401
