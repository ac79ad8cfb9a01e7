"""Sizes at run time (docs/language.md, "Sizes at run time"): symbolic sizes in rearrange,
reshape and split, size-1 axes, unsqueeze/squeeze, names kept by rearrange, pad_to_multiple
and crop. Each network is built three ways (the torch module tree, the standalone file of
`resdsl compile --target torch`, ONNX in onnxruntime) and run at two input sizes: the outputs
agree with each other and with plain torch written by hand."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.diagnostics import ResdslError

import onnxruntime as ort  # noqa: E402 (a test dependency)


def _three(src, tmp_path, name="sample"):
    """(module tree, standalone-file module, onnxruntime session) of one network, same weights."""
    path = tmp_path / f"{name}.res"
    path.write_text(src)
    m = resdsl.build(str(path), seed=0).eval()
    sd = m.state_dict()
    py = tmp_path / f"{name}_gen.py"
    py.write_text(resdsl.to_python(str(path)))
    spec = importlib.util.spec_from_file_location(f"{name}_gen", py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = resdsl.graph(str(path)).name
    p = getattr(mod, net)()
    p.load_state_dict(sd, strict=True)
    p.eval()
    model = resdsl.to_onnx(str(path), weights=sd)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return m, p, sess, py.read_text()


def _agree(src, tmp_path, shapes, ref=None):
    m, p, sess, code = _three(src, tmp_path)
    outs = []
    for shp in shapes:
        x = torch.randn(*shp)
        with torch.no_grad():
            a, b = m(x), p(x)
        c = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert a.shape == b.shape == c.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c, a.numpy(), rtol=1e-4, atol=1e-4)
        if ref is not None:
            with torch.no_grad():
                torch.testing.assert_close(a, ref(x, m), rtol=1e-5, atol=1e-5)
        outs.append(a)
    return m, code, outs


TOKENS = """
network tokens_back(d: int = 16) {
    input x: [N, 3, H, W]
    t = x -> conv(d, 2, stride=2) as embed
    g = t -> rearrange("n c h w -> n (h w) c")
    g -> rearrange("n (h w) c -> n c h w", h=t.H)
    reshape([-1, t.C, t.H, t.W])
}
"""


def test_token_grid_splits_back_at_any_size(tmp_path):
    def ref(x, m):
        return m.embed(x)  # flatten then split back: the identity on the grid
    _, code, outs = _agree(TOKENS, tmp_path, [(2, 3, 8, 12), (1, 3, 14, 6)], ref)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 4, 6), (1, 16, 7, 3)]
    assert "torch.unflatten(" in code and ".size(2)" in code  # sizes read from the tensor, not fixed


def test_any_number_of_symbolic_axes(tmp_path):
    src = """
network many() {
    input x: [N, C=8, H, W]
    y = x -> rearrange("n c h w -> n h w c") -> reshape([-1, x.H, x.W, 8])
    y -> reshape([x.N, x.H, x.W, 2, 4]) -> reshape([x.N * x.H, -1])
}
"""
    _agree(src, tmp_path, [(2, 8, 3, 5), (3, 8, 4, 2)],
           lambda x, m: x.permute(0, 2, 3, 1).reshape(x.shape[0] * x.shape[2], -1))


def test_split_with_symbolic_sizes(tmp_path):
    src = """
network halves() {
    input x: [N, C=6, H, W]
    y = x -> rearrange("n c h w -> n (h w) c")
    a, b = y -> split([x.H * x.W / 2, x.H * x.W / 2], dim=1)
    concat(b, a, dim=1)
}
"""
    def ref(x, m):
        y = x.flatten(2).transpose(1, 2)
        a, b = y.split(y.shape[1] // 2, 1)
        return torch.cat([b, a], 1)
    _agree(src, tmp_path, [(2, 6, 2, 3), (1, 6, 4, 4)], ref)


def test_size_one_axes_and_unsqueeze(tmp_path):
    src = """
network size_one() {
    input x: [N, 8, H, W]
    p = x -> adaptive_avgpool(1) -> rearrange("n c 1 1 -> n c")
    g = p -> rearrange("n c -> n c () ()")
    s = p -> unsqueeze(-1) -> unsqueeze(-1) -> squeeze(3) -> unsqueeze(3)
    u = x -> rearrange("n c h w -> n () c h 1 w") -> rearrange("n () c h () w -> n c h w")
    u * g * s
}
"""
    def ref(x, m):
        p = x.mean((2, 3))
        return x * p[:, :, None, None] * p[:, :, None, None]
    _agree(src, tmp_path, [(2, 8, 3, 5), (1, 8, 6, 2)], ref)


def test_pad_to_multiple_windows_and_crop_back(tmp_path):
    src = """
network windows(ws: int = 3) {
    input x: [N, H, W, 4]
    p = x -> pad_to_multiple(ws, dims=[1, 2])
    w = p -> rearrange("n (h p) (w q) c -> (n h w) (p q) c", p=ws, q=ws) -> scale(2.0)
    y = w -> rearrange("(n h w) (p q) c -> n (h p) (w q) c", n=p.N, h=p.H / ws, w=p.W / ws, p=ws, q=ws)
    y -> crop([x.H, x.W], dims=[1, 2])
}
"""
    _, code, _ = _agree(src, tmp_path, [(2, 5, 7, 4), (1, 6, 3, 4), (1, 1, 2, 4)],
                           lambda x, m: 2.0 * x)
    assert "F.pad(" in code and ".narrow(" in code


def test_pad_to_multiple_matches_torch_pad(tmp_path):
    src = """
network padded() {
    input x: [N, C=2, H, W]
    pad_to_multiple(4, dims=[2, 3], value=1.5)
}
"""
    def ref(x, m):
        h, w = x.shape[2:]
        return F.pad(x, (0, -w % 4, 0, -h % 4), value=1.5)
    _agree(src, tmp_path, [(1, 2, 5, 8), (2, 2, 4, 3)], ref)


def test_rearrange_keeps_the_input_axis_names(tmp_path):
    src = """
network names_kept() {
    input x: [N, 8, H, W]
    y = x -> conv(8, 1) as c -> rearrange("n c h w -> n c w h")
    x + (y -> rearrange("n c w h -> n c h w"))
}
"""
    _agree(src, tmp_path, [(2, 8, 3, 5), (1, 8, 4, 4)], lambda x, m: x + m.c(x))
    g = resdsl.graph("network t() {\n input x: [N, L, D=8]\n"
                     ' rearrange("n (h w) d -> n h w d", h=2)\n}')
    assert [a.name for a in g.outputs[0].shape] == ["N", "H", "W", "D"] or \
        [a.name for a in g.outputs[0].shape][:3] == ["N", "H", "W"]


def test_module_tree_compiles_and_traces_at_two_sizes(tmp_path):
    path = tmp_path / "t.res"
    path.write_text(TOKENS)
    m = resdsl.build(str(path), seed=0).eval()
    traced = torch.fx.symbolic_trace(m)
    c = torch.compile(m, backend="aot_eager", dynamic=True)
    for shp in [(2, 3, 8, 12), (1, 3, 10, 6)]:
        x = torch.randn(*shp)
        with torch.no_grad():
            torch.testing.assert_close(c(x), m(x))
            torch.testing.assert_close(traced(x), m(x))


# ------------------------------------------------------------------ check agrees with every target
def _err(src):
    with pytest.raises(ResdslError) as e:
        resdsl.graph(src)
    return e.value


def test_reshape_that_does_not_divide_is_refused_with_the_sizes():
    e = _err("network t() {\n    input x: [N, 8, 8, 8]\n    x -> reshape([-1, 7])\n}")
    text = str(e)
    assert e.kind == "shape" and "512" in text and "7" in text
    assert ":3:10" in text


@pytest.mark.parametrize("src,words", [
    ('input x: [N, C=6, H=4, W=4]\n    reshape([-1, 5])', ["96", "5"]),
    ('input x: [N, C=6, H=4, W=4]\n    reshape([x.N, 5, 5])', ["96", "25"]),
    ('input x: [N, L, D=6]\n    rearrange("n l (h e) -> n l h e", h=4)', ["6", "4"]),
    ('input x: [N, L, D=6]\n    rearrange("n l (h e) -> n l h e", h=2, e=2)', ["4", "6"]),
    ('input x: [N, L, D=6]\n    rearrange("n () d -> n d")', ["size-1"]),
    ('input x: [N, L, D=6]\n    squeeze(1)', ["size 1"]),
    ('input x: [N, C=6, H, W]\n    split([x.C / 2, x.C / 3], dim=1)', ["add up"]),
    ('input x: [N, C=6, H, W]\n    reshape([-1, 7, x.H])', ["does not divide by 7"]),
])
def test_check_refuses_what_no_target_runs(src, words):
    e = _err("network t() {\n    " + src + "\n}")
    assert e.kind in ("shape", "type", "value")
    for w in words:
        assert w in str(e)


def test_a_size_no_tensor_has_is_refused():
    e = _err('network t() {\n    input x: [N, L, D=6]\n    y = x -> linear(6) as f\n'
             '    z = param([1, 4, 6]) as p\n    z -> crop([x.L], dims=[1])\n}')
    assert e.kind == "shape" and "needs the size(s) L at run time" in str(e)


# ------------------------------------------------------------------ random chains
HEAD = "network t() {\n    input x: [N=2, C=6, H, W]\n"


def _size_text(size, div=1):
    """`.res` text of a one-term size divided by `div` (`3*x.H*x.W/4`), or None."""
    if isinstance(size, int):
        return str(size // div) if size % div == 0 else None
    if len(size.terms) != 1:
        return None
    (mono, c), = size.terms.items()
    c = c / div
    return "*".join([str(c.numerator)] + [f"x.{s}" for s in mono]) + (f" / {c.denominator}" if c.denominator != 1
                                                                       else "")


def _step(kind, k, i, shape, cur):
    """(new lines, new current expression) of one step, or None."""
    r = len(shape)
    letters = [f"a{j}" for j in range(r)]
    lhs = " ".join(letters)
    if kind == "perm":
        perm = list(range(r))
        j = k % r
        perm[j], perm[(j + 1) % r] = perm[(j + 1) % r], perm[j]
        op = f'rearrange("{lhs} -> {" ".join(letters[p] for p in perm)}")'
    elif kind == "merge" and r >= 2:
        j = k % (r - 1)
        op = f'rearrange("{lhs} -> {" ".join(letters[:j] + [f"({letters[j]} {letters[j + 1]})"] + letters[j + 2:])}")'
    elif kind == "split":
        j = k % r
        size = shape[j].size
        syms = sorted(size.symbols) if not isinstance(size, int) else []
        factor = f"x.{syms[k % len(syms)]}" if syms and k % 3 else str(2 + k % 2)
        left = " ".join(letters[:j] + [f"(s{i} t{i})"] + letters[j + 1:])
        right = " ".join(letters[:j] + [f"s{i}", f"t{i}"] + letters[j + 1:])
        op = f'rearrange("{left} -> {right}", s{i}={factor})'
    elif kind == "unsqueeze":
        op = f"unsqueeze({k % (r + 1)})"
    elif kind == "one":
        j = k % (r + 1)
        op = f'rearrange("{lhs} -> {" ".join(letters[:j] + ["()"] + letters[j:])}")'
    elif kind == "reshape":
        op = ["reshape([-1, x.C, x.H, x.W])", "reshape([x.N, -1])", "reshape([-1, x.W, x.H, 2, 3])",
              "reshape([x.N, x.H, -1])"][k % 4]
    elif kind == "halves":
        j = k % r
        half = _size_text(shape[j].size, 2)
        if half is None:
            return None
        return ([f"    p{i}, q{i} = {cur} -> split([{half}, {half}], dim={j})\n"],
                f"concat(q{i}, p{i}, dim={j})")
    else:
        return None
    return [f"    y{i} = {cur} -> {op}\n"], f"y{i}"


def _chain_src(steps):
    """A chain of reshapes/rearranges/splits from `steps` (kind, seed), each step kept only when
    `check` accepts it."""
    lines, cur = [], "x"
    for i, (kind, k) in enumerate(steps):
        shape = resdsl.graph(HEAD + "".join(lines) + f"    {cur}\n}}").outputs[0].shape
        got = _step(kind, k, i, shape, cur)
        if got is None:
            continue
        try:
            resdsl.graph(HEAD + "".join(lines + got[0]) + f"    {got[1]}\n}}")
        except ResdslError:
            continue
        lines, cur = lines + got[0], got[1]
    return HEAD + "".join(lines) + f"    {cur}\n}}\n"


STEP = st.tuples(st.sampled_from(["perm", "merge", "split", "unsqueeze", "one", "reshape", "halves"]),
                 st.integers(0, 11))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=5))
def test_random_chains_that_check_accepts_run_alike_everywhere(steps):
    src = _chain_src(steps)
    m = resdsl.build(src, seed=0).eval()
    model = resdsl.to_onnx(src, weights=m.state_dict())
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for shp in [(2, 6, 72, 144), (2, 6, 144, 72)]:  # sizes the chains' factors 2 and 3 divide
        x = torch.randn(*shp)
        with torch.no_grad():
            a = m(x)
        c = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert a.shape == c.shape, src
        np.testing.assert_array_equal(c, a.numpy(), err_msg=src)
        # a chain only moves data: the values are the input's
        np.testing.assert_array_equal(np.sort(a.numpy().ravel()), np.sort(x.numpy().ravel()), err_msg=src)
