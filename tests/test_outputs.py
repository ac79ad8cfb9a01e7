"""Outputs never destroy anything, through the real command line."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from resdsl.cli import main


SRC = "network n(c: int = 4) {\n    input x: [N, 3, H, W]\n    conv(c, 3, padding=1) -> bn -> relu\n}\n"


def net(tmp_path) -> Path:
    p = tmp_path / "n.res"
    p.write_text(SRC)
    return p


def test_new_file_mode_follows_umask_existing_keeps_its_mode(tmp_path):
    p = net(tmp_path)
    old = os.umask(0o027)
    try:
        assert main(["summary", str(p), "-o", str(tmp_path / "t.txt")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o640
    keep = tmp_path / "k.txt"
    keep.write_text("old")
    keep.chmod(0o604)
    assert main(["summary", str(p), "-o", str(keep)]) == 0
    assert stat.S_IMODE(keep.stat().st_mode) == 0o604 and "total" in keep.read_text()


def test_symlink_is_written_through(tmp_path):
    p = net(tmp_path)
    target = tmp_path / "real.py"
    target.write_text("old")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    assert main(["compile", str(p), "-t", "torch", "-o", str(link)]) == 0
    assert link.is_symlink() and "def n(" in target.read_text()


def test_fifo_and_device_are_written_directly(tmp_path):
    p = net(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert main(["summary", str(p), "-o", str(fifo)]) == 0
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and b"total" in got[0]
    assert main(["summary", str(p), "-o", "/dev/null"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_output_that_is_an_input_is_refused(tmp_path, capsys):
    p = net(tmp_path)
    for cmd in (["compile", str(p), "-o", str(p)], ["summary", str(p), "-o", str(p)],
                ["render", str(p), "-f", "dot", "-o", str(p)]):
        assert main(cmd) == 2
        assert "error[usage]" in capsys.readouterr().err
        assert p.read_text() == SRC
    # an import and a config are inputs too
    lib = tmp_path / "lib.res"
    lib.write_text("block B() {\n    relu\n}\n")
    top = tmp_path / "top.res"
    top.write_text("import lib\nnetwork t() {\n    input x: [N, 3]\n    B()\n}\n")
    assert main(["ir", str(top), "-o", str(lib)]) == 2 and "relu" in lib.read_text()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("c: 8\n")
    assert main(["summary", str(p), "--config", str(cfg), "-o", str(cfg)]) == 2 and cfg.read_text() == "c: 8\n"
    # -O2 writes model.pt beside model.py: it must not replace the checkpoint it reads
    ckpt = tmp_path / "model.pt"
    import resdsl
    torch.save(resdsl.build(str(p), seed=0).state_dict(), ckpt)
    before = ckpt.read_bytes()
    assert main(["compile", str(p), "-O2", "--weights", str(ckpt), "-o", str(tmp_path / "model.py")]) == 2
    assert ckpt.read_bytes() == before and not (tmp_path / "model.py").exists()


def test_folder_missing_folder_unwritable_are_io_errors(tmp_path, capsys):
    p = net(tmp_path)
    for out in (str(tmp_path), str(tmp_path / "no" / "such" / "x.py"), ""):
        assert main(["compile", str(p), "-o", out]) == 1
        err = capsys.readouterr().err
        assert "error[io]" in err and "Traceback" not in err
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = str(ro / "x.py")
    else:  # root writes anywhere a mode allows: use a file system that refuses everyone
        out = "/proc/resdsl-test.py"
    assert main(["compile", str(p), "-o", out]) == 1
    assert "error[io]" in capsys.readouterr().err


def test_failed_write_keeps_old_file_and_data_is_fsynced(tmp_path, monkeypatch):
    p = net(tmp_path)
    out = tmp_path / "o.py"
    out.write_text("previous")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    assert main(["compile", str(p), "-o", str(out)]) == 0
    assert synced and "def n(" in out.read_text()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_side_file_obeys_the_same_rules(tmp_path):
    p = net(tmp_path)
    out = tmp_path / "m.py"
    side = tmp_path / "m.pt"
    side.write_text("x")
    side.chmod(0o640)
    assert main(["compile", str(p), "-O2", "-o", str(out)]) == 0
    assert stat.S_IMODE(side.stat().st_mode) == 0o640  # an existing file keeps its mode
    sd = torch.load(side, weights_only=True)
    assert "0.weight" in sd or any(k.endswith("weight") for k in sd)
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import m; "
                        "import torch; print(m.n()(torch.randn(1, 3, 8, 8)).shape)"], capture_output=True, text=True)
    assert r.returncode == 0 and "torch.Size([1, 4, 8, 8])" in r.stdout, r.stderr


def test_onnx_side_file_of_the_api_gets_the_mode_of_every_output(tmp_path, monkeypatch):
    """`to_onnx_model(..., external=...)` (docs/onnx.md) writes the side file itself: 0666 & ~umask,
    as the command line's (onnx's own writer would make it 0600)."""
    import onnx

    import resdsl
    from resdsl.backends.onnx.export import to_onnx_model
    monkeypatch.chdir(tmp_path)
    g = resdsl.graph(str(net(tmp_path)), c=256)  # a 3x3x3x256 conv weight: large enough to go external
    old = os.umask(0o027)
    try:
        model = to_onnx_model(g, seed=0, external=(".", "api.onnx.data"))
        assert main(["compile", str(net(tmp_path)), "--set", "c=256", "-t", "onnx", "--external-data",
                     "-o", "cli.onnx"]) == 0
    finally:
        os.umask(old)
    onnx.save(model, "api.onnx")
    assert stat.S_IMODE(os.stat("api.onnx.data").st_mode) == 0o640 == stat.S_IMODE(os.stat("cli.onnx.data").st_mode)
    assert os.path.getsize("api.onnx.data") == os.path.getsize("cli.onnx.data") > 0


def test_api_save_refuses_to_overwrite_the_source(tmp_path):
    # the command line refuses `-o net.res`; the API's Figure.save and Summary.save follow the same rule
    import pytest

    import resdsl
    from resdsl.diagnostics import ResdslError
    src = tmp_path / "net.res"
    text = "network n {\n    input x: [N, 3, 8, 8]\n    conv(4, 3, padding=1) -> relu\n}\n"
    src.write_text(text)
    link = tmp_path / "link.res"
    os.link(src, link)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    for obj in (resdsl.summary(str(src)), resdsl.render(str(src), format="dot"),
                resdsl.summary(src, config=str(cfg)), resdsl.render(str(src), format="dot", config=cfg)):
        for target in (src, str(src), link):
            with pytest.raises(ResdslError) as e:
                obj.save(target)
            assert e.value.kind == "usage" and "would destroy it" in e.value.message
        assert src.read_text() == text
    with pytest.raises(ResdslError):
        resdsl.summary(src, config=str(cfg)).save(cfg)
    assert cfg.read_text() == "{}\n"
    resdsl.summary(str(src)).save(tmp_path / "ok.txt")  # another name is fine
    assert "conv" in (tmp_path / "ok.txt").read_text()


def _interrupt_at(monkeypatch, name: str, k: int, exc):
    """Make the k-th call of os.<name> (counting from 1) raise `exc`, as Ctrl-C or a full disk would."""
    real = getattr(os, name)
    calls = [0]

    def fake(*a, **kw):
        calls[0] += 1
        if calls[0] == k:
            raise exc
        return real(*a, **kw)
    monkeypatch.setattr(os, name, fake)


@pytest.mark.parametrize("name,k", [("replace", 1), ("replace", 2), ("fsync", 1), ("fsync", 2), ("fsync", 3)])
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(28, "No space left on device")],
                         ids=["ctrl-c", "disk-full"])
def test_py_and_its_pt_change_together(tmp_path, monkeypatch, name, k, exc):
    """-O2 writes OUT.py and OUT.pt: interrupted anywhere, both are old or both are new."""
    src = net(tmp_path)
    out, pt = tmp_path / "m.py", tmp_path / "m.pt"
    assert main(["compile", str(src), "-t", "torch", "-O2", "--seed", "1", "-o", str(out)]) == 0
    old = (out.read_bytes(), pt.read_bytes())
    src.write_text(SRC.replace("c: int = 4", "c: int = 5"))  # another network: both files change
    with monkeypatch.context() as m:
        _interrupt_at(m, name, k, exc)
        rc = main(["compile", str(src), "-t", "torch", "-O2", "--seed", "2", "-o", str(out)])
    now = (out.read_bytes(), pt.read_bytes())
    assert rc in (0, 1, 130)
    if now != old:
        assert now[0] != old[0] and now[1] != old[1], "a new file beside an old one"  # (Ctrl-C after both: 130)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.py", "n.res"]  # no temporary left
    assert main(["compile", str(src), "-t", "torch", "-O2", "--seed", "2", "-o", str(out)]) == 0
    assert out.read_bytes() != old[0] and pt.read_bytes() != old[1]


def test_onnx_and_its_data_change_together(tmp_path, monkeypatch):
    src = net(tmp_path)
    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    assert main(["compile", str(src), "-t", "onnx", "--external-data", "-o", str(out)]) == 0
    old = (out.read_bytes(), data.read_bytes())
    src.write_text(SRC.replace("c: int = 4", "c: int = 5"))
    for k in (1, 2):
        with monkeypatch.context() as m:
            _interrupt_at(m, "replace", k, KeyboardInterrupt())
            assert main(["compile", str(src), "-t", "onnx", "--external-data", "-o", str(out)]) == 130
        assert (out.read_bytes(), data.read_bytes()) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data", "n.res"]
