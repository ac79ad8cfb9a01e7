"""The Python API's front half (resdsl.api): what it costs to get a graph.

`input_shape` elaborates the program once, and a valid program is read without lark (the
fast parser reads it; Lark is the reference only for what the fast parser hands over)."""
import subprocess
import sys

import pytest

import resdsl.api
from resdsl.diagnostics import ResdslError
from resdsl.ir.shapes import shape_str


@pytest.fixture
def elaborations(monkeypatch):
    """The networks elaborate() is called for, through resdsl.api."""
    calls = []
    real = resdsl.api.elaborate

    def counting(program, network=None, *args, **kwargs):
        calls.append(network)
        return real(program, network, *args, **kwargs)

    monkeypatch.setattr(resdsl.api, "elaborate", counting)
    return calls


def test_input_shape_elaborates_once(elaborations):
    g = resdsl.api.graph("resnet18", input_shape=(2, 3, 64, 64))
    assert elaborations == ["resnet18"]
    assert shape_str(g.inputs[0].shape) == "[2, 3, 64, 64]"
    assert shape_str(g.outputs[0].shape) == "[2, 1000]"
    assert shape_str(g.nodes[0].outputs[0].shape) == "[2, 64, 32, 32]"  # the sizes reach every op


def test_without_input_shape_axes_stay_symbolic(elaborations):
    g = resdsl.api.graph("resnet18")
    assert elaborations == ["resnet18"]
    assert shape_str(g.inputs[0].shape) == "[N, 3, H, W]"


def test_input_shape_applies_to_other_inputs_naming_the_same_axes():
    src = "network two() {\n    input a: [N, 4, L]\n    input b: [N, 4, L]\n    output s = a + b\n}\n"
    g = resdsl.api.graph(src, input_shape=(3, 4, 7))
    assert [shape_str(v.shape) for v in g.inputs] == ["[3, 4, 7]", "[3, 4, 7]"]
    assert shape_str(g.outputs[0].shape) == "[3, 4, 7]"


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 64), "--input-shape has 3 axes, the input x has 4"),
    ((1, 4, 64, 64), "--input-shape gives 4 for an axis fixed at 3"),
])
def test_input_shape_errors(shape, message):
    with pytest.raises(ResdslError) as e:
        resdsl.api.graph("resnet18", input_shape=shape)
    assert e.value.kind == "usage" and e.value.message == message


def test_a_valid_program_is_read_without_lark(root):
    """The fast parser reads every stdlib and example file; lark is imported only for a
    program it hands over (here a syntax error, which Lark locates)."""
    code = ("import sys, glob, resdsl.api\n"
            "for f in sorted(glob.glob('stdlib/*.res')) + sorted(glob.glob('examples/*.res')):\n"
            "    resdsl.api.load(f)\n"
            "g = resdsl.api.graph('examples/cifar_resnet.res', input_shape=(2, 3, 32, 32))\n"
            "print('lark' in sys.modules)\n"
            "try:\n"
            "    resdsl.api.graph('network n() {\\n    input x: [1, 2]\\n    relu(\\n}\\n')\n"
            "except resdsl.api.ResdslError as e:\n"
            "    print(e.kind)\n"
            "print('lark' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "syntax", "True"]
