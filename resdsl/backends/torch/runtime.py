"""Small torch modules that resdsl's generated code uses.

Each class here is self-contained (it needs only ``torch``) because the torch target
copies its source into the standalone ``.py`` file it writes.
"""
import torch
import torch.utils.checkpoint


class DropPath(torch.nn.Module):
    """Stochastic depth: drop whole samples of a residual branch while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f"p={self.p}"


class LayerScale(torch.nn.Module):
    """Learned per-channel scale `gamma` (CaiT / ConvNeXt layer scale) on axis `axis`."""

    def __init__(self, channels: int, init: float = 1e-5, axis: int = -1):
        super().__init__()
        self.axis, self.init = axis, float(init)
        self.gamma = torch.nn.Parameter(torch.full((channels,), self.init))

    def reset_parameters(self):
        torch.nn.init.constant_(self.gamma, self.init)

    def forward(self, x):
        if self.axis in (-1, x.dim() - 1):
            return x * self.gamma
        shape = [1] * x.dim()
        shape[self.axis] = -1
        return x * self.gamma.view(shape)


class SelfAttention(torch.nn.MultiheadAttention):
    """torch.nn.MultiheadAttention applied to one sequence (same parameter names)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, causal=False):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True)
        self.causal = causal

    def reset_parameters(self):
        self.out_proj.reset_parameters()  # as constructed: out_proj first, then the rest
        self._reset_parameters()

    def forward(self, x):
        if isinstance(x, torch.fx.Proxy):  # torch.fx: a leaf, as torch.nn.MultiheadAttention
            return x.tracer.create_proxy("call_module", x.tracer.path_of_module(self), (x,), {})
        mask = None
        if self.causal:
            n = x.shape[1]
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
        return super().forward(x, x, x, need_weights=False, attn_mask=mask)[0]


class LinearInOut(torch.nn.Module):
    """A linear layer whose weight is stored [in, out] (Hugging Face's Conv1D in GPT-2):
    y = x @ weight + bias. Initialised as torch.nn.Linear initialises its [out, in] weight."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = torch.nn.Parameter(torch.empty(in_features, out_features))
        self.bias = torch.nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.kaiming_uniform_(self.weight.t(), a=5**0.5)
        if self.bias is not None:
            bound = 1 / self.in_features**0.5 if self.in_features > 0 else 0
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        y = torch.matmul(x, self.weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def put_module(root, path, module):
    """Register `module` at the dotted `path` under `root`, creating plain containers."""
    *parents, leaf = path.split(".")
    for p in parents:
        if p not in root._modules:
            root.add_module(p, torch.nn.Module())
        root = root._modules[p]
    root.add_module(leaf, module)
    return module


def put_param(root, path, shape, device=None):
    """Register a new (uninitialised) parameter of `shape` at the dotted `path`."""
    *parents, leaf = path.split(".")
    for p in parents:
        if p not in root._modules:
            root.add_module(p, torch.nn.Module())
        root = root._modules[p]
    p = torch.nn.Parameter(torch.empty(shape, device=device))
    root.register_parameter(leaf, p)
    return p


def put_buffer(root, path, tensor, persistent=True):
    """Register `tensor` as a buffer at the dotted `path` (in the state_dict when persistent)."""
    *parents, leaf = path.split(".")
    for p in parents:
        if p not in root._modules:
            root.add_module(p, torch.nn.Module())
        root = root._modules[p]
    root.register_buffer(leaf, tensor, persistent=persistent)
    return tensor


def init_tensor(t, spec):
    """Initialise `t` in place from a `.res` init spec such as ("normal", 0.02)."""
    kind, *args = spec
    init = torch.nn.init
    with torch.no_grad():
        if kind == "zeros":
            init.zeros_(t)
        elif kind == "ones":
            init.ones_(t)
        elif kind == "constant":
            init.constant_(t, args[0])
        elif kind == "normal":
            init.normal_(t, 0.0, *(args[:1] or [1.0]))
        elif kind == "trunc_normal":
            std = args[0] if args else 1.0
            init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)
        elif kind == "uniform":
            init.uniform_(t, *(args or [0.0, 1.0]))
        elif kind == "kaiming_normal":
            init.kaiming_normal_(t, mode=args[0] if args else "fan_in", nonlinearity="relu")
        elif kind == "kaiming_uniform":
            init.kaiming_uniform_(t, mode=args[0] if args else "fan_in", nonlinearity="relu")
        elif kind == "xavier_uniform":
            init.xavier_uniform_(t)
        elif kind == "xavier_normal":
            init.xavier_normal_(t)
        elif kind == "orthogonal":
            init.orthogonal_(t)
        elif kind == "eye":
            init.eye_(t)
        elif kind == "onehot":
            init.zeros_(t)
            t.view(-1)[int(args[0])] = 1.0
        elif kind != "default":
            raise ValueError(f"unknown init {kind!r}")


def make_indexable(root):
    """Turn plain containers whose children are named 0, 1, ... into nn.ModuleList,
    so `model.layer1[0]` works as in torchvision (names and state_dict unchanged). A container
    that the network calls as a whole becomes a module of its own later (lower.py: a ResModule,
    or an nn.Sequential for a chain); the ones left are never called, their children are, so
    they have no forward (an nn.Sequential here would be a forward the network bypasses: its
    forward hooks would never fire)."""
    for name, child in list(root._modules.items()):
        make_indexable(child)
        names = list(child._modules)
        if type(child) is torch.nn.Module and names and names == [str(i) for i in range(len(names))] \
                and not child._parameters and not child._buffers:
            root._modules[name] = torch.nn.ModuleList(child._modules.values())
    return root


def checkpoint(module, *args):
    """Run `module(*args)` under activation checkpointing: its activations are recomputed in
    backward instead of stored. The RNG state is replayed, so dropout and drop_path draw the same."""
    return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False, preserve_rng_state=True)


def _chain(x, *modules):
    for m in modules:
        x = m(x)
    return x


def checkpoint_chain(x, *modules):
    """A segment of consecutive blocks under one checkpoint (Chen et al. 2016, sublinear memory)."""
    return torch.utils.checkpoint.checkpoint(_chain, x, *modules, use_reentrant=False, preserve_rng_state=True)


# the modules of the per-sample ops (resdsl/ir/ops/dynamic.py); the generated file copies their source
from .runtime_dynamic import ResFieldLinear, SkipGate, TopKRouter, VectorQuantizer  # noqa: F401
from .runtime_recurrent import LIF, ConvLSTM, Reservoir  # noqa: F401 (state across time steps)
from .runtime_ssm import selective_scan  # Mamba's selective scan

# functions the generated file defines (codegen copies the source of those it calls)
FILE_FUNCTIONS = (selective_scan,)

# what the generated file copies when it checkpoints (codegen writes their source)
CHECKPOINT_HELPERS = (checkpoint, _chain, checkpoint_chain)
