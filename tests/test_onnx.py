"""The ONNX target: every op and every stdlib/example network exports, passes the ONNX
checker and strict shape inference, and onnxruntime (CPU) computes what the torch
target computes from the same weights (eval mode, BatchNorm statistics randomised);
resnet50 with torchvision's own weights matches torchvision under onnxruntime.

Ops and networks are discovered (resdsl.ir.ops.OPS, resdsl.load(path).networks), so a
new op without an ONNX lowering, or a new network that does not export, fails here."""
import io
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import resdsl
from resdsl.backends.onnx import export as ox
from resdsl.backends.torch.build import buffer_tensor, to_fx
from resdsl.cli import main as cli_main
from resdsl.ir.ops import OPS
from resdsl.weights import initial_state

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ops import CASES as OP_CASES  # noqa: E402  (one table of op cases for every backend)

from conftest import ROOT

TOL = dict(rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ helpers
def check(model):
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def session(model_or_path):
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"])


NORMS = {"bn", "gn", "ln", "ln2d", "rmsnorm"}


def randomised(g, seed=0, fast=False):
    """Weights for `g`: the initial ones (`fast`: scaled random ones, without the slow
    initialisers of 100M-parameter networks), BatchNorm statistics and affine parameters
    randomised, so that BatchNorm (and its folding into the conv) is far from the identity."""
    st = {} if fast else initial_state(g, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for n in g.nodes:
        for local, spec in n.params.items():
            full = n.path if local == "" else f"{n.path}.{local}"
            shape = tuple(spec.shape)
            if n.op == "buffer":  # a constant (an index table) keeps its value; a non-persistent one is no weight
                if spec.kind == "buffer":
                    st[full] = buffer_tensor(n)
                continue
            if local == "num_batches_tracked":
                st[full] = torch.tensor(0)
            elif local == "running_var" or (n.op in NORMS and local == "weight"):
                st[full] = torch.rand(shape, generator=gen) + 0.5
            elif local == "running_mean" or (n.op in NORMS and local == "bias"):
                st[full] = torch.randn(shape, generator=gen) * 0.1
            elif fast and len(shape) >= 2:  # torch's default scale, U(-1, 1) / sqrt(fan_in)
                st[full] = (torch.rand(shape, generator=gen) * 2 - 1) / math.sqrt(math.prod(shape[1:]))
            elif fast:
                st[full] = torch.randn(shape, generator=gen) * 0.1
    for n in g.nodes:  # a tied parameter (`tie=`) is its owner's tensor: a checkpoint holds it twice, equal
        for local, owner in n.attrs.get("_tie", ()):
            st[f"{n.path}.{local}" if local else n.path] = st[owner]
    return st


def structure_only(model):
    """The model with its large initializers turned into graph inputs of the same type and
    shape: the checker and strict shape inference see the same graph, without copying
    hundreds of MB (the weights themselves are checked by running the model)."""
    h = onnx.helper
    big = [t for t in model.graph.initializer if len(t.raw_data) > 4096]
    small = [t for t in model.graph.initializer if len(t.raw_data) <= 4096]
    ins = list(model.graph.input) + [h.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in big]
    g = h.make_graph(list(model.graph.node), model.graph.name, ins, list(model.graph.output), initializer=small)
    return h.make_model(g, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def torch_model(g, state):
    """The torch target's module for `g` holding `state` (built on meta: no second init)."""
    gm = to_fx(g, device="meta")
    gm.load_state_dict(state, strict=True, assign=True)
    if any(b.is_meta for b in gm.buffers()):  # a constant outside the state_dict: built with its value
        gm = to_fx(g, weights=state)
    return gm.eval()


def inputs_for(g, batch, spatial=64, seed=0):
    """One tensor per graph input: symbolic N = batch, other symbolic axes = spatial;
    integer ids for inputs that feed an embedding or index resfield's frames."""
    gen = torch.Generator().manual_seed(seed)
    users = g.users()
    out = {}
    for v in g.inputs:
        sizes = [ax.size if isinstance(ax.size, int) else (batch if i == 0 else spatial)
                 for i, ax in enumerate(v.shape)]
        emb = [n for n in users.get(v, []) if n is not None and n.op == "embedding"]
        frames = [n for n in users.get(v, []) if n is not None and n.op == "resfield" and n.inputs[1] is v]
        # ids picked apart per field first (AutoInt: select, then one embedding per field)
        emb += [m for n in users.get(v, []) if n is not None and n.op == "select"
                for o in n.outputs for m in users.get(o, []) if m is not None and m.op == "embedding"]
        if emb:
            out[v.name] = torch.randint(0, min(n.attrs["num"] for n in emb), sizes, generator=gen)
        elif frames:  # the frame index of each sample
            out[v.name] = torch.randint(0, frames[0].attrs["frames"], sizes, generator=gen)
        else:
            out[v.name] = torch.randn(sizes, generator=gen)
    return out


def assert_close_scaled(got, want, ill_conditioned=False):
    """rtol 1e-4, atol 1e-5 in units of the output's scale (max |want|, at least 1): a
    randomly initialised deep ResNet gives logits in the hundreds, where 1e-5 absolute is
    below float32 resolution. `ill_conditioned` (ILL_CONDITIONED below): at most one element
    in 10,000 outside that, and each within 1e-2."""
    scale = max(1.0, float(np.abs(want).max()))
    if not ill_conditioned:
        return np.testing.assert_allclose(got / scale, want / scale, **TOL)
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-2)
    off = ~np.isclose(got / scale, want / scale, **TOL)
    assert off.sum() <= want.size // 10_000, f"{off.sum()} of {want.size} elements differ"


# Networks whose outputs are, by the paper's construction, ill-conditioned at a few points of
# any input: the two runtimes' equal-up-to-rounding intermediate values give visibly different
# outputs there. APNet's phase atan2(I, R), and A cos / A sin of it: where |R + iI| is near 0
# the angle follows the rounding of R and I (convolution sums ordered differently in
# onnxruntime); the phase error is |dR + i dI| / |R + iI|.
ILL_CONDITIONED = {"APNet", "apnet"}


def compare(g, model, state, batches, spatial=64):
    gm = torch_model(g, state)
    sess = session(model)
    names = [i.name for i in model.graph.input]
    for bs in batches:
        while True:
            feeds = inputs_for(g, bs, spatial, seed=bs)
            try:
                with torch.no_grad():
                    want = gm(*feeds.values())
                break
            except RuntimeError as e:  # e.g. Inception-ResNet's stem needs more than 32x32
                if "size" not in str(e) or spatial >= 512:
                    raise
                spatial *= 2
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        got = sess.run(None, {nm: t.numpy() for nm, t in zip(names, feeds.values())})
        assert len(got) == len(want)
        for z, y in zip(got, want):
            assert z.shape == tuple(y.shape)
            assert_close_scaled(z, y.numpy(), g.name in ILL_CONDITIONED)


def size_of(size, env):
    if isinstance(size, int):
        return size
    return int(sum(c * math.prod(env.get(x, 32) for x in mono) for mono, c in size.terms.items()))


def macs(g, spatial=32):
    """Multiply-adds of one batch-1 forward pass (conv, linear, matmul, attention, lstm), with
    the symbolic axes at `spatial`: what sorts networks into the cost tiers below."""
    env = {"N": 1}
    for v in g.inputs:
        for i, ax in enumerate(v.shape):
            if not isinstance(ax.size, int) and i > 0:
                for sym in ax.size.symbols:
                    env.setdefault(sym, spatial)
    total = 0
    for n in g.nodes:
        out = math.prod(size_of(a.size, env) for a in n.outputs[0].shape) if n.outputs else 0
        if n.op in ("conv", "linear", "lstm") or n.op == "attention":
            w = sum(math.prod(p.shape) for p in n.params.values() if len(p.shape) >= 2)
            rows = out // max(1, size_of(n.outputs[0].shape[1 if n.op == "conv" else -1].size, env))
            total += rows * w
            if n.op == "attention":
                length = size_of(n.inputs[0].shape[1].size, env)
                total += 2 * out * length
        elif n.op == "matmul":
            total += out * size_of(n.inputs[0].shape[-1].size, env)
    return total


def src_net(decl, stmts):
    return f"network n() {{\n    input x: {decl}\n    {stmts}\n}}\n"


def _concrete(v):
    """A network that elaborates without arguments (aliases; defs whose params have defaults)."""
    defn = getattr(v, "defn", None)
    return defn is None or all(p.default is not None for p in defn.params)


# the networks whose check takes longest (each over 20 s of CPU on the shared 2-core machine)
HEAVY = {"resnet1202_cifar", "preact_resnet1001", "rcan", "r2unet", "InceptionResNetV2",
         # with its auxiliary head Inception-v3 takes 299x299 and up: compared at 512;
         # maxvit_t: fixed 224 inputs, a small config of it in tests/test_parity_swin_maxvit.py;
         # swin_t (any input size): test_swin_t_one_export_at_two_sizes below
         "Inception3", "swin_t", "maxvit_t"}


def discover():
    """Every concrete network of stdlib/ and examples/; the fast loop (-m "not slow") checks
    the first of each file unless it is one of the HEAVY, the rest are marked slow."""
    out = []
    for folder in ("stdlib", "examples"):
        for path in sorted((ROOT / folder).glob("*.res")):
            first = True
            for name, v in resdsl.load(str(path)).networks.items():
                if _concrete(v):
                    slow = not first or name in HEAVY
                    out.append(pytest.param(str(path), name, id=f"{folder}/{path.stem}:{name}",
                                            marks=[pytest.mark.slow] if slow else []))
                    first = False
    return out


NETWORKS = discover()


# ------------------------------------------------------------------ every op
# Cases for ops whose torch-side case (tests/test_ops.py CASES) is missing or not usable
# here; the same format: (input declaration, statements).
EXTRA_CASES = {
    "embedding": ("[N, L=6]", "embedding(11, 4) as tok"),
    # time-major [T*N, ..] for any batch: the steps are x and a change of it
    "lif": ("[N, C=3, L=4]", 'concat(x, x * 2.0 - 0.3, dim=0) -> lif(2, reset="soft", decay=0.5, threshold=0.1)'),
    "convlstm": ("[N, C=2, H=4, W=4]", "concat(x, x -> tanh, x, dim=0) -> convlstm(3, 3) as m"),
    "pad": ("[N, C=3, H=5, W=6]", "pad([1, 2, 0, 3], value=0.5)"),
    "l2norm": ("[N, C=3, H=5, W=6]", "l2norm(dim=1)"),
    "orthogonal": ("[N, C=3, H=5, W=6]", "orthogonal(x -> relu, x)"),
    "scalar_add": ("[N, C=3, H=5, W=6]", "scalar_add(0.3) as s"),
    "ln2d": ("[N, C=3, H=5, W=6]", "ln2d as l"),
    "stack": ("[N, C=3, H=5, W=6]", "stack(x, x -> relu, dim=1) -> mean(dim=1)"),
    "sum": ("[N, C=3, H=5, W=6]", "sum(dim=[2, 3], keepdim=true)"),
    "expand": ("[N, L=5, D=4]", "concat(expand(param([1, 1, 4], init=normal(0.02)) as cls, x), x, dim=1)"),
    "positions": ("[N, L=6]", "p = x -> positions -> embedding(6, 4) as wpe\n    add(x -> embedding(11, 4) as wte, p)"),
}
# Further cases: symbolic axes kept symbolic, and attribute variants.
SYMBOLIC_CASES = [
    ("[N, C=4, H, W]", 'rearrange("n c (h p) (w q) -> n (h w) (p q c)", p=2, q=2)', (3, 4, 6, 8)),
    ("[N, C=4, H, W]", 'rearrange("n c h w -> n (h w) c")', (2, 4, 5, 3)),
    ("[N, C=4, H, W]", "flatten(2)", (2, 4, 5, 3)),
    ("[N, C=4, H, W]", "flatten(1, 2)", (2, 4, 5, 3)),
    ("[N, C=4, H, W]", "flatten(0)", (2, 4, 5, 3)),
    ("[N, L, D=8]", "attention(2, causal=true) as m", (2, 5, 8)),
    ("[N, L, D=8]", "sdpa(x, x, x -> linear(8, layout=\"in_out\") as v, 2, causal=true)", (2, 5, 8)),
    ("[N, L, D=8]", "ln as l -> attention(2, bias=false) as m -> mean(dim=1)", (2, 5, 8)),
    ("[N, C=8, H, W]", 'pixel_shuffle(2) -> upsample(2) -> conv(3, 3, padding="same", padding_mode="reflect") as c',
     (2, 8, 5, 6)),
    ("[N, C=3, H, W]", 'conv(3, 3, padding=1, padding_mode="circular") as c -> '
                       'conv(3, 3, padding=1, padding_mode="replicate") as d', (2, 3, 5, 6)),
    ("[N, C=3, H, W]", 'upsample(2, mode="bicubic") -> gelu', (2, 3, 5, 6)),
    ("[N, C=3, L]", 'upsample(3, mode="linear") -> bn(affine=false) as b', (2, 3, 5)),
    ("[N, C=3, L]", "conv(4, 3) as c -> bn as b -> relu", (2, 3, 7)),
    ("[N, C=3, H, W=6]", "gn(1) as g -> layer_scale(0.5) as s -> rmsnorm as r", (2, 3, 5, 6)),
    ("[N, C=3, L=5]", "linear(4, bias=false) as c -> reshape([-1, 4])", (2, 3, 5)),
    ("[N, C=4, H, W]", "a, b = chunk(2)\n    concat(b, a -> conv(2, 1) as c -> bn as d)", (2, 4, 5, 3)),
]


def op_case(name):
    if name in EXTRA_CASES:
        return EXTRA_CASES[name]
    if name in OP_CASES and OP_CASES[name][0] is not None:
        return OP_CASES[name][:2]
    return None


def test_every_op_has_a_lowering():
    missing = sorted(set(OPS) - set(ox.LOWERINGS))
    assert not missing, (f"ops without an ONNX lowering (add one with @lowering in resdsl/backends/onnx/ops.py "
                         f"or layers.py): {missing}")


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_torch(name):
    case = op_case(name)
    assert case is not None, f"op `{name}` has no test case: add one to EXTRA_CASES in tests/test_onnx.py"
    src = src_net(*case)
    g = resdsl.graph(src)
    assert any(n.op == name for n in g.nodes), f"the case for {name} does not use it"
    state = randomised(g)
    for opset in (ox.OPSET_MIN, ox.OPSET_DEFAULT, ox.OPSET_MAX):
        model = ox.to_onnx_model(g, weights=state, opset=opset)
        check(model)
        compare(g, model, state, (1, 3))


@pytest.mark.parametrize("decl,stmts,shape", SYMBOLIC_CASES, ids=[c[1].split("(")[0] + str(i)
                                                                 for i, c in enumerate(SYMBOLIC_CASES)])
def test_symbolic_axes_stay_symbolic(decl, stmts, shape):
    g = resdsl.graph(src_net(decl, stmts))
    state = randomised(g)
    model = ox.to_onnx_model(g, weights=state, opset=19)
    check(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for ax, d in zip(g.inputs[0].shape, dims):
        assert (d.dim_value == ax.size) if isinstance(ax.size, int) else (d.dim_param == ax.name)
    gm = torch_model(g, state)
    sess = session(model)
    bigger = tuple(v if isinstance(ax.size, int) else v + 2 for v, ax in zip(shape, g.inputs[0].shape))
    for s in (shape, bigger):  # one file, two sizes of N, H, W ...
        x = torch.randn(*s)
        with torch.no_grad():
            y = gm(x).numpy()
        assert_close_scaled(sess.run(None, {"x": x.numpy()})[0], y)


def test_missing_lowering_names_the_op_and_line(monkeypatch):
    g = resdsl.graph(src_net("[N, D=5]", "relu\n    tanh"))
    monkeypatch.delitem(ox.LOWERINGS, "tanh")
    with pytest.raises(resdsl.ResdslError) as e:
        ox.to_onnx_model(g, seed=0)
    assert "`tanh`" in e.value.message and "line 4" in e.value.message
    assert e.value.span is not None and e.value.span.line == 4 and e.value.help


# ------------------------------------------------------------------ every network
# Cost tiers (the suite runs on 2 CPU cores), by multiply-adds at batch 1 and parameters:
# small networks run at batches 1 and 3; larger ones at batch 1; the largest (ViT-L/H,
# ConvNeXt-L, ResMLP-B, the 1024-token looped GPT-2, EDSR at full width: built from the
# same blocks as tested smaller siblings) are exported and checked, not run.
# Symbolic spatial axes are 32 (doubled where a network needs more).
FULL = (1.5e9, 30e6)
RUN = (20e9, 130e6)


@pytest.mark.parametrize("path,name", NETWORKS)
def test_network_matches_torch(path, name):
    g = resdsl.graph(path, name)
    cost = (macs(g), g.num_params())
    run = cost[0] <= RUN[0] and cost[1] <= RUN[1]
    if run:
        state = randomised(g, fast=True)
    else:
        consts = {n.path: buffer_tensor(n) for n in g.nodes if n.op == "buffer"}
        state = {k: consts.get(k, torch.zeros(spec.shape)) for k, spec in g.param_names().items()}
    model = ox.to_onnx_model(g, weights=state)
    check(structure_only(model))
    assert "Dropout" not in {nd.op_type for nd in model.graph.node}  # inference form
    for t in model.graph.initializer:  # folded convs keep the conv's names, and say so
        assert t.name in state or t.name.startswith("const/") or "folded in" in t.doc_string \
            or any(n.op == "buffer" and n.path == t.name for n in g.nodes), t.name
    assert [i.name for i in model.graph.input] == [v.name for v in g.inputs]
    # the eval form: outputs marked `training` (googlenet's auxiliary heads) are not exported
    assert [o.name for o in model.graph.output] == [n for i, n in enumerate(g.output_names) if i not in g.train_only]
    if run:
        full = cost[0] <= FULL[0] and cost[1] <= FULL[1]
        compare(g, model, state, (1, 3) if full else (1,), spatial=32)


def test_swin_t_one_export_at_two_sizes():
    """swin_t takes any input size (padding, shift test and shift mask at run time): one exported
    model runs at 64 (no shift in the last two stages) and 100 (every stage padded) in onnxruntime."""
    g = resdsl.graph(str(ROOT / "stdlib" / "swin.res"), "swin_t")
    state = randomised(g, fast=True)
    model = ox.to_onnx_model(g, weights=state)
    gm = torch_model(g, state)
    sess = session(model)
    for size in (64, 100):
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            want = gm(x).numpy()
        assert_close_scaled(sess.run(None, {model.graph.input[0].name: x.numpy()})[0], want)


def test_initial_weights_are_the_torch_targets():
    path = str(ROOT / "examples" / "cifar_resnet.res")
    g = resdsl.graph(path)
    model = ox.to_onnx_model(g, seed=7, fold_bn=False)
    want = resdsl.build(path, seed=7).state_dict()
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    used = {k for k in want if not k.endswith("num_batches_tracked")}
    assert set(inits) == used
    for k in used:
        np.testing.assert_array_equal(inits[k], want[k].numpy())
    assert "BatchNormalization" in {n.op_type for n in model.graph.node}


def test_unfolded_and_folded_batchnorm_agree():
    path = str(ROOT / "stdlib" / "resnet.res")
    g = resdsl.graph(path, "resnet18")
    state = randomised(g, seed=3)
    folded = ox.to_onnx_model(g, weights=state)
    plain = ox.to_onnx_model(g, weights=state, fold_bn=False)
    assert "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    assert sum(n.op_type == "BatchNormalization" for n in plain.graph.node) == 20
    for t in plain.graph.initializer:  # every tensor is the state_dict entry of its name
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), state[t.name].numpy())
    x = torch.randn(2, 3, 64, 64).numpy()
    a, b = session(folded).run(None, {"x": x})[0], session(plain).run(None, {"x": x})[0]
    assert_close_scaled(a, b)


# ------------------------------------------------------------------ torchvision weights, CLI
@pytest.mark.slow
def test_resnet50_torchvision_weights_cli(tmp_path):
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.resnet50().eval()
    gen = torch.Generator().manual_seed(5)
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    ckpt, out = tmp_path / "r50.pt", tmp_path / "r50.onnx"
    torch.save(tv.state_dict(), ckpt)
    assert cli_main(["compile", str(ROOT / "stdlib" / "resnet.res"), "-n", "resnet50", "--target", "onnx",
                     "-o", str(out), "--weights", str(ckpt)]) == 0
    onnx.checker.check_model(str(out), full_check=True)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        want = tv(x).numpy()
    got = session(str(out)).run(None, {"x": x.numpy()})[0]
    assert_close_scaled(got, want)


def test_cli_input_shape_and_summary(tmp_path, capsys):
    out = tmp_path / "r18.onnx"
    assert cli_main(["compile", str(ROOT / "stdlib" / "resnet.res"), "-n", "resnet18", "-t", "onnx",
                     "-o", str(out), "--input-shape", "2,3,64,64", "--seed", "1", "--opset", "17"]) == 0
    line = capsys.readouterr().err  # status lines go to stderr: stdout carries only data
    assert str(out) in line and "opset 17" in line and "nodes" in line
    m = onnx.load(str(out))
    assert m.opset_import[0].version == 17
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 64, 64]
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [2, 1000]
    x = torch.randn(2, 3, 64, 64)
    gm = resdsl.build(str(ROOT / "stdlib" / "resnet.res"), "resnet18", seed=1).eval()
    with torch.no_grad():
        want = gm(x).numpy()
    assert_close_scaled(session(str(out)).run(None, {"x": x.numpy()})[0], want)


def test_same_input_gives_identical_bytes(tmp_path):
    files = []
    for i in range(2):
        out = tmp_path / f"t{i}.onnx"
        assert cli_main(["compile", str(ROOT / "examples" / "transformer.res"), "-t", "onnx", "-o", str(out),
                         "--seed", "3"]) == 0
        files.append(out.read_bytes())
    assert files[0] == files[1]
    a = resdsl.to_onnx(str(ROOT / "examples" / "cifar_resnet.res"), seed=4).SerializeToString()
    b = resdsl.to_onnx(str(ROOT / "examples" / "cifar_resnet.res"), seed=4).SerializeToString()
    assert a == b


def test_shared_loop_is_stored_once():
    src = """
block Refine(c: int) {
    residual { conv(c, 3, padding=1) as conv -> bn as bn -> relu }
}
network looped(n: int = 2) {
    input x: [N, 8, H, W]
    loop n shared { Refine(8) as refine }
}
"""
    models = {}
    for n in (2, 8):
        g = resdsl.graph(src, n=n)
        state = randomised(g)
        models[n] = m = ox.to_onnx_model(g, weights=state)
        check(m)
        compare(g, m, state, (2,), spatial=8)
    init = {n: sum(len(t.raw_data) for t in m.graph.initializer) for n, m in models.items()}
    assert init[2] == init[8] and len(models[2].graph.initializer) == len(models[8].graph.initializer)
    size = {n: len(m.SerializeToString()) for n, m in models.items()}
    weights = 8 * 8 * 9 * 4
    assert size[8] - size[2] < weights, size  # six more applications add nodes, not weights


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("opset", [ox.OPSET_MIN - 1, ox.OPSET_MAX + 1])
def test_bad_opset(opset, tmp_path, capsys):
    g = resdsl.graph(src_net("[N, D=5]", "relu"))
    with pytest.raises(resdsl.ResdslError) as e:
        ox.to_onnx_model(g, seed=0, opset=opset)
    assert f"opset {opset}" in e.value.message and f"{ox.OPSET_MIN} to {ox.OPSET_MAX}" in e.value.help
    rc = cli_main(["compile", str(ROOT / "examples" / "cifar_resnet.res"), "-t", "onnx", "-o",
                   str(tmp_path / "x.onnx"), "--opset", str(opset)])
    err = capsys.readouterr().err
    assert rc == 2 and f"opset {opset} is not supported" in err and "help:" in err  # a usage error
    assert not (tmp_path / "x.onnx").exists()


def test_weights_that_do_not_fit(tmp_path, capsys):
    path = str(ROOT / "examples" / "cifar_resnet.res")
    sd = resdsl.build(path, seed=0).state_dict()
    sd.pop("conv1.weight")
    sd["extra.weight"] = torch.zeros(3)
    sd["fc.weight"] = torch.zeros(5, 64)
    ckpt = tmp_path / "bad.pt"
    torch.save(sd, ckpt)
    out = tmp_path / "x.onnx"
    rc = cli_main(["compile", path, "-t", "onnx", "-o", str(out), "--weights", str(ckpt)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "missing (1): conv1.weight" in err and "unexpected (1): extra.weight" in err
    assert "fc.weight: file has [5, 64], network needs [10, 64]" in err
    with pytest.raises(resdsl.ResdslError, match="missing"):
        resdsl.to_onnx(path, weights=sd)


def test_external_data_for_large_models(tmp_path):
    path = str(ROOT / "examples" / "cifar_resnet.res")
    g = resdsl.graph(path)
    state = randomised(g)
    model = ox.to_onnx_model(g, weights=state)
    out = tmp_path / "big.onnx"
    # onnx's own writer, one tensor at a time, into the folder the caller gives
    ext = ox.to_onnx_model(g, weights=state, external=(str(tmp_path), "big.onnx.data"))
    out.write_bytes(ext.SerializeToString())
    data = tmp_path / "big.onnx.data"
    assert out.stat().st_size < 40_000 < data.stat().st_size
    onnx.checker.check_model(str(out), full_check=True)
    x = torch.randn(2, 3, 32, 32).numpy()
    want = session(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session(str(out)).run(None, {"x": x})[0], want)
    reloaded = onnx.load(str(out))  # onnx's own loader follows the side file
    assert {t.name for t in reloaded.graph.initializer} == {t.name for t in model.graph.initializer}
    for t in reloaded.graph.initializer:
        ref = next(r for r in model.graph.initializer if r.name == t.name)
        assert t.raw_data == ref.raw_data


def test_api_mirrors_build():
    buf = io.BytesIO()
    m = resdsl.to_onnx(str(ROOT / "stdlib" / "resnet.res"), "resnet18", seed=2, input_shape=(1, 3, 32, 32),
                       classes=10)
    onnx.save(m, buf)
    assert m.graph.name == "resnet18" and m.opset_import[0].version == ox.OPSET_DEFAULT
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [1, 10]


@pytest.mark.parametrize("decl,stmt,ref", [
    ("[N, C=4, L=6]", "ln(affine=false)", lambda x: F.layer_norm(x, (6,))),
    ("[N, C=4, L=6]", "ln(dims=2, affine=false)", lambda x: F.layer_norm(x, (4, 6))),
    ("[N, C=4, L=6]", "rmsnorm(affine=false)", lambda x: F.rms_norm(x, (6,))),
    ("[N, C=4, L=6]", "gn(2, affine=false)", lambda x: F.group_norm(x, 2)),
    ("[N, C=4, H=3, W=2]", "ln2d(affine=false)",
     lambda x: F.layer_norm(x.permute(0, 2, 3, 1), (4,)).permute(0, 3, 1, 2)),
], ids=lambda v: v if isinstance(v, str) and "(" in v else None)
def test_norms_without_affine_match_torch_functional(decl, stmt, ref):
    g = resdsl.graph(src_net(decl, stmt))
    model = ox.to_onnx_model(g, weights={})
    check(model)
    x = torch.randn(3, *[int(d.split("=")[1]) for d in decl.strip("[]").split(", ")[1:]])
    assert_close_scaled(session(model).run(None, {"x": x.numpy()})[0], ref(x).numpy())
