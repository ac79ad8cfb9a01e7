"""Inputs that once ended in a traceback or an internal error and now give a clean error at
file:line:col (or, for Python keywords as input names, simply work)."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import resdsl
from resdsl.cli import main
from resdsl.diagnostics import ResdslError


def _err(tmp_path, src, kind=None, line=None, words=()):
    p = tmp_path / "t.res"
    p.write_text(src)
    with pytest.raises(ResdslError) as e:
        resdsl.graph(str(p))
    err = e.value
    assert err.span is not None and err.span.source.path == str(p), err.render()
    if kind:
        assert err.kind == kind, err.render()
    if line:
        assert err.span.line == line, err.render()
    for w in words:
        assert w in err.render(), err.render()
    return err


def test_a_5000_digit_integer_in_the_config(tmp_path, capsys):
    net = tmp_path / "n.res"
    net.write_text("network n(classes: int = 10) {\n    input x: [N, 3]\n    linear(classes)\n}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("# a config\nclasses: " + "9" * 5000 + "\n")
    with pytest.raises(ResdslError) as e:
        resdsl.graph(str(net), config=str(cfg))
    assert e.value.kind == "config" and "too long" in e.value.message
    assert e.value.span is not None and (e.value.span.line, e.value.span.column) == (2, 10)
    assert main(["check", str(net), "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "error[config]" in err and f"{cfg}:2:10" in err


@pytest.mark.parametrize("arg", ['sizes="a"', "sizes=3", "sizes=[1]"])
def test_rearrange_sizes_keyword(tmp_path, arg):
    _err(tmp_path, f'network n {{\n    input x: [N, 4, 8]\n    rearrange("n c l -> n l c", {arg})\n}}\n',
         "type", 3, ["keywords of their own"])


@pytest.mark.parametrize("expr", ['in.H + "a"', '"a" * in.H', 'in.H - "1"', 'in.H // "2"', 'in.W * [2]',
                                  'in.H + none'])
def test_size_arithmetic_with_a_string_or_other_operand(tmp_path, expr):
    src = ("block B {\n    let s = " + expr + "\n    relu\n}\n"
           "network n {\n    input x: [N, 3, H, W]\n    B()\n}\n")
    _err(tmp_path, src, "type", 2, ["symbolic size"])


def test_a_number_as_a_string_is_not_a_size(tmp_path):
    # "1" used to pass through Fraction("1"): in.H + "1" was H + 1
    src = 'block B {\n    reshape([in.N, 3, in.H + "1", in.W])\n}\nnetwork n {\n    input x: [N, 3, H, W]\n    B()\n}\n'
    _err(tmp_path, src, "type", 2)


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    m = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = m
    spec.loader.exec_module(m)
    return m


@pytest.mark.parametrize("name", ["lambda", "class", "None", "pass", "self", "match", "torch"])
def test_inputs_named_with_python_keywords_compile_and_run(tmp_path, name):
    src = f"network n {{\n    input {name}: [N, 3], other: [N, 3]\n    yield = {name} -> relu\n    yield + other\n}}\n"
    p = tmp_path / "k.res"
    p.write_text(src)
    out = tmp_path / f"k_{name.lower()}.py"
    assert main(["compile", str(p), "-t", "torch", "-o", str(out)]) == 0
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.equal(_load(out).n()(a, b), torch.relu(a) + b)
    assert torch.equal(resdsl.build(str(p))(a, b), torch.relu(a) + b)


@pytest.mark.parametrize("body", ["if f { relu } else { input a: [N, 3] }\n    relu",
                                  "if f { relu } else { input a }\n    relu",
                                  "for i in [1] {\n        input a\n    }\n    relu"])
def test_a_block_input_inside_if_else_or_for(tmp_path, body):
    src = "block B(f: bool = false) {\n    " + body + "\n}\nnetwork n {\n    input x: [N, 3]\n    B()\n}\n"
    err = _err(tmp_path, src, "syntax", None, ["top level"])
    assert err.span.line in (2, 3)


def test_network_inputs_inside_if_still_work():
    g = resdsl.graph("network n(f: bool = false) {\n    if f {\n        input x: [N, 4]\n    } else {\n"
                     "        input x: [N, 3]\n    }\n    relu\n}\n")
    assert [a.size for a in g.inputs[0].shape][1:] == [3]


@pytest.mark.parametrize("yaml_text", ["c: " + "[" * 5000 + "1" + "]" * 5000 + "\n",
                                       "c:\n" + "- " * 5000 + "1\n"])
def test_a_config_nested_thousands_deep_is_refused_before_yaml_reads_it(tmp_path, yaml_text):
    # the fuzzer's config generator: PyYAML took seconds to reach its recursion limit (a 'hang' on a
    # loaded machine); the depth is now counted first and refused at the place it goes too deep
    import time
    src = tmp_path / "n.res"
    src.write_text("network n(c: int = 4) {\n    input x: [N, 3, 8, 8]\n    conv(c, 1)\n}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    t = time.process_time()
    with pytest.raises(ResdslError) as e:
        resdsl.graph(str(src), config=str(cfg))
    assert time.process_time() - t < 0.5
    assert e.value.kind == "limit" and "nests deeper than" in e.value.message and e.value.span.line in (1, 2)
    cfg.write_text("c: " + "[" * 10 + "4" + "]" * 10 + "\n")  # shallow nesting still reaches the type check
    with pytest.raises(ResdslError) as e:
        resdsl.graph(str(src), config=str(cfg))
    assert e.value.kind != "limit"
