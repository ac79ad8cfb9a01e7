"""Safe generated code: nothing from the input reaches the standalone torch file
except as an escaped literal or a checked identifier. Property test over random names and paths:
the file imports, builds and runs (same outputs and state_dict as build()), and executes nothing else."""
import ast
import builtins
import importlib.util
import keyword
import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.backends.torch.build import to_python as emit
from resdsl.diagnostics import ResdslError

# names that broke generated files: keywords, builtins, the file's own names, nn.Module attributes
TRICKY = ["Net", "ResNet", "Resnet", "torch", "init", "init_tensor", "checkpoint", "checkpoint_chain", "SOURCE",
          "WEIGHTS", "self", "super", "range", "float", "getattr", "forward", "training", "class", "None", "True",
          "def", "lambda", "print", "len", "x", "x1", "operator", "os", "Sequential", "Module", "DropPath",
          "Bottleneck", "code", "graph", "meta", "_modules", "__init__", "__class__", "inf", "nan", "relu",
          "conv", "fc", "cuda", "eval", "type", "float32", "Block", "B", "Net_", "network", "block", "input",
          "output", "residual", "repeat", "loop", "shared", "as", "let", "if", "else", "for", "in", "and"]
IDENT = st.one_of(st.sampled_from(TRICKY), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True))
LAYER = st.one_of(IDENT, st.integers(0, 3).map(str))


def source(net, blk, names):
    a, b, c, d = names
    return f"""
block {blk}(ch: int) {{
    residual {{ conv(ch, 3, padding=1) as {a} -> relu -> layer_norm_free }} shortcut {{ conv(ch, 1) as {b} }}
    relu
}}
network {net}() {{
    input img: [2, 3, 6, 6]
    conv(4, 1) as {c}
    {blk}(4) as {d}
    repeat 2 as stage {{ {blk}(4) }}
    gn(2, eps=1e400) -> adaptive_avgpool(1) -> flatten -> linear(3) as head
}}
""".replace(" -> layer_norm_free", "")


def _reserved(name: str) -> bool:
    from resdsl.backends.torch.tree import reserved_name
    return name is not None and (not name.isdigit()) and reserved_name(name) is not None


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(net=IDENT, blk=IDENT, names=st.lists(LAYER, min_size=4, max_size=4, unique=True),
       path=st.text(min_size=1, max_size=40))
def test_generated_file_is_safe_for_any_names_and_path(tmp_path_factory, net, blk, names, path):
    tmp = tmp_path_factory.mktemp("gen")
    text = source(net, blk, names)
    try:
        g = resdsl.graph(text)
    except ResdslError:
        return  # not a valid .res program (a name the language itself reserves)
    marker = tmp / "PWNED"
    hostile = path + f'""";open({str(marker)!r}, "w");"""\\\n' + "'''"
    try:
        src = emit(g, hostile)
    except ResdslError as e:
        # only a name that torch cannot hold as a module attribute may be refused, with a clear message
        assert e.kind == "name" and any(_reserved(n) for n in names + ["stage", "head"]), e
        return
    tree = ast.parse(src)
    for node in tree.body:  # top level: imports, defs, classes and constant assignments only
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Expr, ast.Assign)), \
            ast.dump(node)
        if isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant)
        if isinstance(node, ast.Assign):
            assert isinstance(node.value, (ast.Constant, ast.Name)) or "os.path" in ast.unparse(node.value)
    assert "inf" not in [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]  # written as float("inf")
    file = tmp / "gen_net.py"
    file.write_text(src)
    spec = importlib.util.spec_from_file_location("gen_net", file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not marker.exists()
    assert mod.SOURCE == hostile
    fn = [v for k, v in vars(mod).items() if callable(v) and getattr(v, "__module__", None) == "gen_net"
          and not isinstance(v, type) and k not in ("init_tensor", "init", "checkpoint", "checkpoint_chain",
                                                     "_chain")]
    assert len(fn) == 1
    ours = fn[0](seed=0)
    built = resdsl.build(text, seed=0)
    a, b = ours.state_dict(), built.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)  # names never mangled in the state
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), built(x))
    assert not marker.exists()


def test_network_named_like_its_class_does_not_recurse(tmp_path):
    for name in ("Net", "ResNet", "Resnet"):
        text = f"network {name}() {{ input x: [1, 3, 4, 4]\n conv(2, 1) as c }}"
        src = emit(resdsl.graph(text), "n.res")
        ns = {}
        exec(compile(src, "n.py", "exec"), ns)
        fn = ns[name] if not keyword.iskeyword(name) and name not in dir(builtins) else ns[name + "_"]
        out = fn(seed=0)(torch.randn(1, 3, 4, 4))
        assert out.shape == (1, 2, 4, 4)


def test_reserved_layer_names_are_refused_with_a_location():
    for name in ("forward", "training", "__class__"):
        text = f"network n() {{\n input x: [1, 3, 4, 4]\n conv(2, 1) as {name}\n}}"
        with pytest.raises(ResdslError) as e:
            resdsl.build(text)
        assert e.value.kind == "name" and name in e.value.message and e.value.span is not None


def test_non_finite_floats_are_written_as_float_calls(tmp_path):
    # check refuses 1e400 with a location (the op table: numbers are finite) ...
    with pytest.raises(resdsl.ResdslError) as e:
        resdsl.graph("network n() { input x: [1, 4, 4, 4]\n gn(2, eps=1e400) }")
    assert e.value.span is not None
    # ... and should a non-finite float reach the writer anyway (a graph made by a pass), it is
    # spelled float("inf"), not the bare name inf
    g = resdsl.graph("network n() { input x: [1, 4, 4, 4]\n gn(2, eps=0.5) }")
    (node,) = [n for n in g.nodes if n.op == "gn"]
    node.attrs["eps"] = float("inf")
    src = emit(g, "n.res")
    assert 'float("inf")' in src
    ns = {}
    exec(compile(src, "n.py", "exec"), ns)
    gn = [m for m in ns["n"]().modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(gn) == 1 and math.isinf(gn[0].eps)


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_literals_round_trip_and_are_as_ruff_formats_them(v):
    """Every finite float is written so that Python reads back the same value and ruff format keeps
    it as it is (repr's `1e+30` would become `1e30`)."""
    from resdsl.backends.torch.pyfmt import lit
    text = lit(v)
    assert float(ast.literal_eval(text)) == v or (v == 0 and float(ast.literal_eval(text)) == 0)
    assert "e+" not in text and "E" not in text


def test_torch_functions_replaced_by_a_library_keep_their_public_names(monkeypatch):
    """torch_geometric replaces torch.select and torch.index_select with wrappers when imported: a
    network lowered after that (whenever the table of public names was made) is still written
    with `torch.select`."""
    src = "network n {\n    input x: [N, C=4, L=6]\n    x -> select(2, 1)\n}\n"
    emit(resdsl.graph(src), "n")  # the table of public names is made before the library comes
    original = torch.select

    def wrapper(*args, **kwargs):
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "select", wrapper)
    text = emit(resdsl.graph(src), "n")
    assert "torch.select(" in text or ".select(" in text
