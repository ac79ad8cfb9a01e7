"""Checkpoints and --rename rules that once ended in a traceback, a hang, or a silent loss:
sparse, meta, quantized, nested, complex and non-tensor values; empty and truncated files;
two keys renamed onto one name; a catastrophically backtracking --rename pattern."""
from __future__ import annotations

import subprocess
import sys
import time
import warnings

import pytest
import torch

import resdsl
from resdsl import rename as R
from resdsl.cli import main
from resdsl.diagnostics import ResdslError

NET = "network n {\n    input x: [N, 3]\n    linear(2) as fc\n}\n"


@pytest.fixture
def net(tmp_path):
    p = tmp_path / "lin.res"
    p.write_text(NET)
    return p


def _bad_weight(kind):
    w = torch.randn(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sparse": lambda: w.to_sparse(),
            "sparse_csr": lambda: w.to_sparse_csr(),
            "meta": lambda: torch.empty(2, 3, device="meta"),
            "quantized": lambda: torch.quantize_per_tensor(w, 0.1, 0, torch.qint8),
            "complex": lambda: torch.randn(2, 3, dtype=torch.complex64),
            "list": lambda: w.tolist(),
        }[kind]()


HOSTILE = {"sparse": "sparse", "sparse_csr": "sparse", "meta": "meta tensor", "quantized": "quantized",
           "complex": "complex", "list": "not a tensor"}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_tensors_are_refused_by_name(kind, net, tmp_path, capsys):
    sd = {"fc.weight": _bad_weight(kind), "fc.bias": torch.zeros(2)}
    with pytest.raises(ResdslError) as e:
        resdsl.build(str(net), weights=sd)
    assert e.value.kind == "weights" and "fc.weight" in e.value.message and HOSTILE[kind] in e.value.message
    ckpt = tmp_path / "ckpt.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(sd, ckpt)
    for target, out in (("onnx", "o.onnx"), ("torch", "o.py")):
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["compile", str(net), "-t", target, "-O2", "--weights", str(ckpt), "-o", str(tmp_path / out)])
        err = capsys.readouterr().err
        assert rc == 1 and "error[weights]" in err and HOSTILE[kind] in err, err
        assert not (tmp_path / out).exists()


def test_real_dtypes_still_load():
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        w = torch.randn(2, 3).to(dt)
        m = resdsl.build(NET, weights={"fc.weight": w, "fc.bias": torch.zeros(2)})
        assert torch.equal(m.fc.weight, w.float())


def test_empty_and_truncated_checkpoints_say_what_is_wrong(net, tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    full = tmp_path / "full.pt"
    torch.save({"fc.weight": torch.randn(2, 3), "fc.bias": torch.zeros(2)}, full)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[:1])
    zeros = tmp_path / "zeros.pt"
    zeros.write_bytes(b"\0" * 64)
    for path, words in ((empty, "empty (0 bytes)"), (cut, "truncated"), (zeros, "truncated")):
        rc = main(["compile", str(net), "-t", "onnx", "--weights", str(path), "-o", str(tmp_path / "o.onnx")])
        err = capsys.readouterr().err
        assert rc == 1 and words in err, err
        reason = err.split(f"{path}", 1)[1].splitlines()[0]
        assert reason.strip(": ").strip(), err  # the reason is not empty


# ---------------------------------------------------------------- --rename
def test_rename_onto_one_name_is_an_error_naming_both_keys():
    sd = {"a.weight": torch.zeros(2, 3), "fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}
    with pytest.raises(ResdslError) as e:
        resdsl.build(NET, weights=sd, rename=[r"^a\.=fc."])
    msg = e.value.message
    assert e.value.kind == "usage" and "`a.weight`" in msg and "`fc.weight`" in msg and "onto `fc.weight`" in msg
    # collisions made by a later rule name the keys as they were in the file
    sd = {"x.weight": torch.zeros(2, 3), "y.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}
    with pytest.raises(ResdslError) as e:
        resdsl.build(NET, weights=sd, rename=[r"^x=p", r"^y=q", r"^[pq]=fc"])
    assert "`x.weight` (now `p.weight`)" in e.value.message and "`y.weight` (now `q.weight`)" in e.value.message


def test_rename_still_maps_keys_in_order():
    assert R.rename_keys(["backbone.l1.w", "head.b"], [r"^backbone\.=", r"l(\d)=layer\1"]) == ["layer1.w", "head.b"]
    assert R.rename_keys(["a"], "a=b") == ["b"]  # one rule as a string
    for rule, words in (("noeq", "is not REGEX=REPL"), ("(=x", "missing )"), (r"a=\2", "invalid group")):
        with pytest.raises(ResdslError) as e:
            R.rename_keys(["a"], [rule])
        assert e.value.kind == "usage" and words in e.value.message


def test_catastrophic_rename_is_stopped_with_a_clear_error():
    t = time.monotonic()
    with pytest.raises(ResdslError) as e:
        R.rename_keys(["a" * 60 + "!", "fc.bias"], [r"^fc=fc", r"(a+)+$=x"], timeout=1.5)
    assert time.monotonic() - t < 10
    msg = e.value.message
    assert e.value.kind == "usage" and "'(a+)+$=x'" in msg and "stopped" in msg and "(a+)+" in e.value.help


def test_catastrophic_rename_through_the_cli_exits_cleanly(net, tmp_path):
    ckpt = tmp_path / "c.pt"
    torch.save({"fc.weight": torch.randn(2, 3), "fc.bias": torch.zeros(2), "a" * 60 + "!": torch.zeros(1)}, ckpt)
    code = ("import sys; import resdsl.rename as R; R.TIMEOUT_S = 1.5\n"
            "from resdsl.cli import main; sys.exit(main(sys.argv[1:]))")
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code, "compile", str(net), "-t", "onnx", "--weights", str(ckpt),
                        "--rename", "(a+)+$=x", "-o", str(tmp_path / "o.onnx")], capture_output=True, text=True,
                       timeout=120)
    assert time.monotonic() - t < 60
    assert p.returncode == 2 and "error[usage]" in p.stderr and "stopped" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "o.onnx").exists()
