"""The optimizer: golden tests per pass (filecheck), property tests (optimized == unoptimized
on the torch and ONNX backends), negative tests, and parity with torchvision / timm."""
from __future__ import annotations

import copy
import io
import re
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl.api as api
from resdsl import cli
from resdsl.backends.torch.build import to_fx
from resdsl.diagnostics import ResdslError
from resdsl.ir.printer import print_graph
from resdsl.passes import PASSES, PIPELINES, Pass, PassManager, run_pipeline
from resdsl.weights import initial_state

from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "passes"
REPVGG = ROOT / "stdlib" / "repvgg.res"
RESNET = ROOT / "stdlib" / "resnet.res"


# ------------------------------------------------------------------ a tiny FileCheck
def _pattern(text: str):
    """Literal text, with {{regex}} pieces."""
    out, i = "", 0
    for m in re.finditer(r"\{\{(.*?)\}\}", text):
        out += re.escape(text[i:m.start()]) + m.group(1)
        i = m.end()
    return re.compile(out + re.escape(text[i:]))


def filecheck(text: str, checks):
    """FileCheck semantics for CHECK (in order), CHECK-NEXT (the very next line) and CHECK-NOT
    (nowhere between the neighbouring matches, or up to the end)."""
    lines = text.splitlines()
    pos, nots = 0, []

    def no_match(lo, hi):
        for pat, raw in nots:
            for j in range(lo, hi):
                if pat.search(lines[j]):
                    raise AssertionError(f"CHECK-NOT: {raw} matched line {j + 1}: {lines[j]}\n{text}")

    for kind, raw in checks:
        pat = _pattern(raw)
        if kind == "CHECK-NOT":
            nots.append((pat, raw))
            continue
        if kind == "CHECK-NEXT":
            if pos >= len(lines) or not pat.search(lines[pos]):
                got = lines[pos] if pos < len(lines) else "<end>"
                raise AssertionError(f"CHECK-NEXT: {raw} does not match line {pos + 1}: {got}\n{text}")
            hit = pos
        else:
            hit = next((j for j in range(pos, len(lines)) if pat.search(lines[j])), None)
            if hit is None:
                raise AssertionError(f"CHECK: {raw} not found after line {pos}\n{text}")
        no_match(pos, hit)
        nots = []
        pos = hit + 1
    no_match(pos, len(lines))


def read_checks(src: str):
    run = re.search(r"^# RUN: (.*)$", src, re.M).group(1).split()
    checks = re.findall(r"^# (CHECK|CHECK-NEXT|CHECK-NOT): (.*)$", src, re.M)
    return run, checks


def test_filecheck_can_fail():
    text = "a\nb\nc\n"
    filecheck(text, [("CHECK", "a"), ("CHECK-NEXT", "b"), ("CHECK-NOT", "x"), ("CHECK", "c")])
    for bad in ([("CHECK", "z")], [("CHECK", "a"), ("CHECK-NEXT", "c")],
                [("CHECK-NOT", "b"), ("CHECK", "c")], [("CHECK", "a"), ("CHECK-NOT", "{{[bc]}}")]):
        with pytest.raises(AssertionError):
            filecheck(text, bad)


# ------------------------------------------------------------------ helpers
def rand_state(g, seed=0):
    """Initial weights with randomised BN statistics and affine, scales and biases, so no fold
    is a near-identity."""
    w = initial_state(g, seed)
    gen = torch.Generator().manual_seed(seed + 1)

    def r(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    for n in g.nodes:
        p = n.path
        if n.op == "bn":
            c = n.attrs["_c"]
            w[f"{p}.running_mean"] = r((c,), -0.5, 0.5)
            w[f"{p}.running_var"] = r((c,), 0.5, 2.0)
            if n.attrs["affine"]:
                w[f"{p}.weight"] = r((c,), 0.5, 1.5)
                w[f"{p}.bias"] = r((c,), -0.5, 0.5)
        elif n.op == "layer_scale":
            w[f"{p}.gamma"] = r(w[f"{p}.gamma"].shape, 0.2, 1.0)
        elif n.op == "scalar_mul":
            w[p] = r((1,), 0.2, 1.0)
        elif n.has("affine_out") and n.attrs.get("bias"):
            w[f"{p}.bias"] = r(w[f"{p}.bias"].shape, -0.5, 0.5)
    return w


def assert_close(got, want):
    scale = float(want.abs().max()) or 1.0
    err = float((got - want).abs().max())
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale), f"max error {err} at output scale {scale}"


def run_eval(g, w, x):
    m = to_fx(g, weights=w).eval()
    with torch.no_grad():
        return m(x)


def ops_of(g):
    return [n.op for n in g.nodes]


def example_input(g, seed=0, n=2, hw=9):
    shape = [n if not isinstance(a.size, int) else a.size for a in g.inputs[0].shape]
    shape = [s if isinstance(s, int) else hw for s in shape]
    for i, a in enumerate(g.inputs[0].shape):
        if not isinstance(a.size, int):
            shape[i] = n if i == 0 else hw
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ golden tests, one per pass
GOLDENS = sorted(p.name for p in GOLDEN.glob("*.res"))


@pytest.mark.parametrize("name", GOLDENS)
def test_golden(name):
    path = GOLDEN / name
    src = path.read_text()
    run, checks = read_checks(src)
    g = api.graph(str(path))
    assert print_graph(g) == (GOLDEN / name.replace(".res", ".before.ir")).read_text()
    level = run[1] if run[0] == "-p" else None
    opt = run[0][2:] if run[0].startswith("-O") else None
    w = rand_state(g)
    before = print_graph(g)
    g2, w2 = run_pipeline(g, w, level=opt, passes=level, verify=True)
    assert print_graph(g) == before, "a pass changed its input graph"
    filecheck(print_graph(g2), checks)
    x = example_input(g)
    assert_close(run_eval(g2, w2, x), run_eval(g, w, x))


def test_every_pass_has_a_golden_test_and_a_contract():
    covered = set()
    for name in GOLDENS:
        run, _ = read_checks((GOLDEN / name).read_text())
        covered.update(run[1].split(",") if run[0] == "-p" else PIPELINES[run[0][2:]])
    assert covered == set(PASSES)
    for cls in PASSES.values():
        doc = cls.__doc__ or ""
        assert "Legal" in doc and "Requires" in doc and "Guarantees" in doc, cls.name
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", cls.name)


# ------------------------------------------------------------------ random residual / parallel graphs
@st.composite
def branch(draw, c, stride, allow_identity):
    """One branch as .res chain text, and (fold|keep, kernel extent, groups, is a square conv)."""
    kinds = ["conv", "conv_bn", "acnet", "pw_k", "pw_avg", "relu", "pw_bias_k", "scaled"]
    if allow_identity:
        kinds += ["bn", "identity"]
    kind = draw(st.sampled_from(kinds))
    k = draw(st.sampled_from([1, 3, 5]))
    g = draw(st.sampled_from([1, 1, 2, c]))
    bias = draw(st.booleans())
    drop = " -> dropout(0.2)" if draw(st.integers(0, 5)) == 0 else ""
    conv = f"conv({c}, {k}, stride={stride}, padding={k // 2}, groups={g}, bias={'true' if bias else 'false'})"
    if kind == "conv":
        return conv + drop, ("fold", k, g, True)
    if kind == "conv_bn":
        return conv + drop + " -> bn", ("fold", k, g, True)
    if kind == "scaled":
        return conv + " -> bn -> scale(0.5)", ("fold", k, g, True)
    if kind == "acnet":
        h = draw(st.booleans())
        kk, pp = ("[1, 3]", "[0, 1]") if h else ("[3, 1]", "[1, 0]")
        return f"conv({c}, {kk}, stride={stride}, padding={pp}, groups={g}, bias=false) -> bn", ("fold", 3, g, False)
    if kind == "pw_k":
        return f"conv({c}, 1, bias=false) -> {conv} -> bn", ("fold", k, g, True)
    if kind == "pw_avg":
        return f"conv({c}, 1, bias=false) -> avgpool(3, stride={stride}, padding=1) -> bn", ("fold", 3, 1, False)
    if kind == "pw_bias_k":  # a bias before a padded conv: must not fold (border)
        return f"conv({c}, 1) -> bn -> conv({c}, 3, stride={stride}, padding=1)", ("keep", 3, 1, False)
    if kind == "relu":
        return conv + " -> bn -> relu", ("keep", k, g, False)
    if kind == "bn":
        return "bn", ("fold", 1, 1, False)
    return "identity", ("fold", 1, 1, False)


@st.composite
def network(draw):
    c = draw(st.sampled_from([4, 8]))
    hw = draw(st.sampled_from([7, 8]))
    stride = draw(st.sampled_from([1, 1, 2]))
    kind = draw(st.sampled_from(["parallel", "residual"]))
    infos = []
    if kind == "parallel":
        n = draw(st.integers(2, 4))
        brs = []
        for _ in range(n):
            txt, info = draw(branch(c, stride, stride == 1))
            brs.append(txt)
            infos.append(info)
        merge = draw(st.sampled_from(["add", "add", "mean"]))
        region = f"parallel(merge={merge}) {{\n        " + "\n        | ".join(brs) + "\n    }"
    else:
        body, info = draw(branch(c, stride, False))
        infos.append(info)
        merge = draw(st.sampled_from(["add", "scale(0.1)", "layer_scale(0.01)"]))
        dp = draw(st.sampled_from([0.0, 0.0, 0.1]))
        opts = f"merge={merge}" + (f", drop_path={dp}" if dp else "")
        short = ""
        if stride != 1 or draw(st.booleans()):
            short = f" shortcut {{ conv({c}, 1, stride={stride}, bias=false) -> bn }}"
            infos.append(("fold", 1, 1, True))
        else:
            infos.append(("fold", 1, 1, False))
        region = f"residual({opts}) {{ {body} }}{short}"
    text = (f"network t() {{\n    input x: [N, {c}, H={hw}, W={hw}]\n    {region}\n    relu\n"
            f"    residual {{ conv({c}, 3, padding=1) -> bn }}\n}}\n")
    # all branches fold with groups 1, and a square conv of the largest extent pays for the fold
    kmax = max(k for _, k, _, _ in infos)
    expect_fold = (all(s == "fold" and g == 1 for s, _, g, _ in infos)
                   and any(sq and k == kmax for _, k, _, sq in infos))
    return text, expect_fold, c, hw


def _check_network(text, seed):
    g = api.graph(text)
    w = rand_state(g, seed)
    g2, w2 = run_pipeline(g, w, level="2", verify=True)
    return g, w, g2, w2


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network(), st.integers(0, 1000))
def test_property_torch_optimized_equals_unoptimized(case, seed):
    text, expect_fold, c, hw = case
    g, w, g2, w2 = _check_network(text, seed)
    x = torch.randn(2, c, hw, hw, generator=torch.Generator().manual_seed(seed))
    assert_close(run_eval(g2, w2, x), run_eval(g, w, x))
    ops = ops_of(g2)
    users = g2.users()
    for n in g2.nodes:  # fold-bn left no BN it could fold
        p = n.inputs[0].producer if n.op == "bn" else None
        assert p is None or not (p.has("affine_out") and users[n.inputs[0]] == [n]), print_graph(g2)
    assert not any(n.has("stochastic") for n in g2.nodes)
    if expect_fold:  # the region and the trailing residual both became single convs
        assert ops == ["conv", "relu", "conv"], (text, print_graph(g2))


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network(), st.integers(0, 1000))
def test_property_onnx_optimized_equals_unoptimized(case, seed):
    import onnxruntime as ort
    text, expect_fold, c, hw = case
    g = api.graph(text)
    w = rand_state(g, seed)
    model = api.to_onnx(text, weights=w, opt="2")
    x = torch.randn(2, c, hw, hw, generator=torch.Generator().manual_seed(seed))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert_close(torch.from_numpy(np.asarray(got)), run_eval(g, w, x))
    if expect_fold:
        types = [n.op_type for n in model.graph.node]
        assert types.count("Conv") == 2 and "Add" not in types and "BatchNormalization" not in types, types


# ------------------------------------------------------------------ negative tests
def _opt(text, level="2", passes=None, explain=False):
    g = api.graph(text)
    w = rand_state(g)
    log = io.StringIO()
    g2, w2 = run_pipeline(g, w, level=level, passes=passes, verify=True, explain=explain, log=log)
    x = example_input(g, hw=8)
    assert_close(run_eval(g2, w2, x), run_eval(g, w, x))
    return g2, log.getvalue()


def test_nonlinear_branch_is_not_folded():
    g2, log = _opt("network t() {\n input x: [N, 8, H, W]\n parallel {\n"
                   "  conv(8, 3, padding=1) -> bn -> relu\n  | conv(8, 1) -> bn\n }\n}\n", explain=True)
    assert ops_of(g2).count("conv") == 2 and "add" in ops_of(g2)
    assert "bn" not in ops_of(g2)  # each BN still folds into its own conv


def test_mismatched_strides_are_not_folded():
    g2, log = _opt("network t() {\n input x: [N, 8, H=8, W=8]\n parallel {\n"
                   "  conv(8, 3, stride=2, padding=1)\n  | conv(8, 5)\n }\n}\n", explain=True)
    assert ops_of(g2) == ["conv", "conv", "add"]
    assert "different strides" in log and "t.res" not in log


def test_misaligned_kernel_centres_are_not_folded():
    g2, log = _opt("network t() {\n input x: [N, 8, H=8, W=8]\n parallel {\n"
                   "  conv(8, 3, stride=2, padding=1)\n  | conv(8, 2, stride=2)\n }\n}\n", explain=True)
    assert ops_of(g2) == ["conv", "conv", "add"]
    assert "centres" in log


def test_bias_before_padded_conv_is_not_merged():
    g2, log = _opt("network t() {\n input x: [N, 8, H, W]\n conv(8, 1) -> conv(8, 3, padding=1)\n}\n",
                   passes="fold-branches")
    assert ops_of(g2) == ["conv", "conv"]


def test_unprofitable_fold_is_kept():
    # depthwise 3x3 + dense 1x1 would become a dense 3x3: more multiply-adds than both together
    g2, log = _opt("network t() {\n input x: [N, 8, H, W]\n parallel {\n"
                   "  conv(8, 3, padding=1, groups=8)\n  | conv(8, 1)\n }\n}\n", explain=True)
    assert ops_of(g2) == ["conv", "conv", "add"] and "cost" in log


def test_o1_keeps_batchnorm_and_training_behaviour():
    text = "network t() {\n input x: [N, 4, H, W]\n conv(8, 3, padding=1, bias=false) -> bn -> identity -> relu\n" \
           " residual(drop_path=0.2) { conv(8, 3, padding=1) -> bn -> dropout(0.3) }\n}\n"
    g = api.graph(text)
    w = rand_state(g)
    g1, w1 = run_pipeline(g, w, level="1", verify=True)
    assert ops_of(g1).count("bn") == 2 and "identity" not in ops_of(g1)
    assert "dropout" in ops_of(g1) and "drop_path" in ops_of(g1)
    m0, m1 = to_fx(g, weights=w).train(), to_fx(g1, weights=w1).train()
    x = torch.randn(4, 4, 6, 6)
    torch.manual_seed(0)
    y0 = m0(x)
    torch.manual_seed(0)
    y1 = m1(x)
    assert_close(y1, y0)  # batch statistics, same dropout masks
    s0, s1 = m0.state_dict(), m1.state_dict()
    for k in s1:
        assert torch.allclose(s1[k].float(), s0[k].float()), k  # running stats updated alike


def test_conv_with_two_consumers_keeps_its_batchnorm():
    g2, _ = _opt("network t() {\n input x: [N, 4, H, W]\n a = x -> conv(8, 3, padding=1, bias=false) as c\n"
                 " b = a -> bn as n\n concat(a, b)\n}\n")
    assert ops_of(g2) == ["conv", "bn", "concat"]
    assert g2.nodes[0].attrs["bias"] is False


def test_shared_weights_are_not_folded():
    g2, _ = _opt("network t() {\n input x: [N, 8, H, W]\n"
                 " loop 2 shared { conv(8, 3, padding=1, bias=false) as c -> bn as n -> relu }\n}\n")
    assert ops_of(g2).count("bn") == 2


def test_unknown_pass_name_suggests():
    g = api.graph("network t() {\n input x: [N, 4, H, W]\n relu\n}\n")
    with pytest.raises(ResdslError) as e:
        run_pipeline(g, initial_state(g, 0), passes="fold-bm")
    assert "unknown pass `fold-bm`" in str(e.value) and "fold-bn" in e.value.help
    with pytest.raises(ResdslError):
        run_pipeline(g, initial_state(g, 0), level="3")


def test_verify_names_the_passes_that_ran():
    class Broken(Pass):
        """Breaks SSA.

        Legal: never. Requires: nothing. Guarantees: a broken graph."""
        name = "broken"

        def run(self, g, weights, ctx):
            g.nodes[0].outputs[0].name = g.inputs[0].name
            return g, weights

    g = api.graph("network t() {\n input x: [N, 4, H, W]\n relu\n}\n")
    with pytest.raises(ResdslError) as e:
        PassManager([PASSES["remove-identity"](), Broken()], verify=True).run(g, initial_state(g, 0))
    assert "after passes: remove-identity, broken" in str(e.value)


def test_optimizer_is_deterministic_and_leaves_inputs_alone():
    g = api.graph(str(REPVGG), "repvgg_a0")
    w = rand_state(g)
    w_copy = {k: v.clone() for k, v in w.items()}
    before = print_graph(g)
    a, wa = run_pipeline(g, w, level="2")
    b, wb = run_pipeline(g, w, level="2")
    assert print_graph(g) == before and all(torch.equal(w[k], w_copy[k]) for k in w)
    assert print_graph(a) == print_graph(b)
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


# ------------------------------------------------------------------ stdlib parity
def _randomise_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return model


@pytest.mark.slow
def test_resnet50_o2_matches_torchvision_without_batchnorm():
    import onnxruntime as ort
    import torchvision
    tv = _randomise_bn(torchvision.models.resnet50()).eval()
    sd = tv.state_dict()
    m = api.build(str(RESNET), "resnet50", weights=sd, opt="2").eval()
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = tv(x)
        assert_close(m(x), want)
    model = api.to_onnx(str(RESNET), "resnet50", weights=sd, opt="2")
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert_close(torch.from_numpy(np.asarray(got)), want)


def test_repvgg_a0_loads_timm_and_folds_like_reparameterize_model():
    import timm
    from timm.utils import reparameterize_model
    tm = _randomise_bn(timm.create_model("repvgg_a0")).eval()
    sd = tm.state_dict()
    g = api.graph(str(REPVGG), "repvgg_a0")
    m0 = to_fx(g).eval()
    m0.load_state_dict(sd, strict=True)  # training-time form: timm's names, strictly
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(m0(x), tm(x))
    g2, w2 = run_pipeline(g, sd, level="2", verify=True)
    body = [n for n in g2.nodes if n.op not in ("adaptive_avgpool", "flatten", "linear")]
    assert [n.op for n in body] == ["conv", "relu"] * 22
    assert all(n.attrs["kernel"] == 3 and n.attrs["groups"] == 1 for n in body if n.op == "conv")
    rp = reparameterize_model(copy.deepcopy(tm)).eval()
    assert not any(isinstance(x_, torch.nn.BatchNorm2d) for x_ in rp.modules())
    with torch.no_grad():
        assert_close(run_eval(g2, w2, x), rp(x))


# ------------------------------------------------------------------ CLI
def test_cli_torch_o2_writes_folded_weights_and_explains(tmp_path, capsys, monkeypatch):
    src = GOLDEN / "fold_branches_repvgg.res"
    out = tmp_path / "net.py"
    assert cli.main(["compile", str(src), "-O2", "--seed", "3", "--explain", "--verify", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    line = next(i for i, ln in enumerate(src.read_text().splitlines(), 1) if "parallel {" in ln)
    assert f"{src}:{line}:9: 3 branches (conv 3x3, conv 1x1, bn) -> one conv 3x3" in err
    assert "[fold-branches] 1 rewrite(s); nodes 5 -> 2, parameters 2,624 -> 2,320" in err
    assert (tmp_path / "net.pt").exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("net", None)
    import net
    m = net.t().eval()
    ref = api.build(str(src), seed=3).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        assert_close(m(x), ref(x))
    # one conv holds every weight (the activation is a module of the file, as in torchvision)
    assert [type(x).__name__ for x in m.modules() if list(x.parameters(recurse=False))] == ["Conv2d"]


def test_cli_ir_unknown_pass(capsys):
    rc = cli.main(["ir", str(GOLDEN / "cse.res"), "-p", "cse,dead-code"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "unknown pass `dead-code`" in err and "dead-code-elimination" in err
