"""examples/train.py: a few steps on one process and under torchrun with 2 processes (DDP and
FSDP2 per block), on the built-in digits and on an ImageFolder; what a timm user expects of it
(flags, progress with ETA, summary.csv and checkpoints as timm writes them, --resume that
continues exactly, --amp). Runs in this process where it can (a tiny digits network), so the
loop stays fast."""
import csv
import importlib.util
import os
import pty
import subprocess
import sys

import pytest
import torch

import resdsl

from conftest import ROOT

TRAIN = str(ROOT / "examples" / "train.py")
DIGITS = str(ROOT / "examples" / "digits.res")
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
# a 1,382-parameter digits network, 11 steps an epoch, on one thread (two threads on a busy
# 2-core machine cost several times the time)
TINY = [DIGITS, "--data", "digits", "--set", "width=4", "--set", "n=1", "-b", "128", "--threads", "1"]
PER_EPOCH = 1437 // 128

import sklearn  # noqa: E402,F401  (the digits data set ships with scikit-learn, a test extra: fail loudly without it)


@pytest.fixture(scope="module")
def train():
    """examples/train.py as a module (its main(argv) runs a training in this process)."""
    spec = importlib.util.spec_from_file_location("train_example", TRAIN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    yield mod
    torch.set_num_threads(threads)  # --threads 1 set it for the whole process


def run(args, torchrun=False, **kw):
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                              if torchrun else []) + [TRAIN] + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, **kw)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def weights(path):
    return torch.load(path, weights_only=True)


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


# ------------------------------------------------------------------ resume
@pytest.fixture(scope="module")
def two_epochs(train, tmp_path_factory):
    """The uninterrupted run: 2 epochs, its weights and its summary.csv."""
    out = tmp_path_factory.mktemp("uninterrupted")
    train.main(TINY + ["--epochs", "2", "--output", str(out), "--save", str(out / "w.pt")])
    return out


@pytest.mark.parametrize("stop", [PER_EPOCH, 5], ids=["after-epoch-1", "mid-epoch-1"])
def test_resume_continues_exactly(train, two_epochs, tmp_path, stop):
    """Train 2 epochs == train 1 (or stop inside it), resume, train to the end: the same weights
    (bitwise on one CPU process; 1e-6 allowed) and the same summary.csv. The stopped run still
    schedules its LR over 2 epochs, as an interrupted one would."""
    train.main(TINY + ["--epochs", "2", "--steps", str(stop), "--output", str(tmp_path)])
    ckpt = weights(tmp_path / "last.pth.tar")
    assert ckpt["step"] == stop and ckpt["batch"] == stop % PER_EPOCH
    train.main(TINY + ["--epochs", "2", "--resume", str(tmp_path / "last.pth.tar"), "--output", str(tmp_path),
                       "--save", str(tmp_path / "w.pt")])
    assert_same_weights(weights(tmp_path / "w.pt"), weights(two_epochs / "w.pt"))
    assert (tmp_path / "summary.csv").read_text() == (two_epochs / "summary.csv").read_text()


def test_resume_restores_the_optimizer_and_schedule(train, two_epochs, tmp_path):
    """--no-resume-opt takes weights and position only: the run then ends elsewhere, so the
    exact match above needs the optimizer state restored."""
    train.main(TINY + ["--epochs", "2", "--steps", str(PER_EPOCH), "--output", str(tmp_path)])
    train.main(TINY + ["--epochs", "2", "--resume", str(tmp_path / "last.pth.tar"), "--no-resume-opt",
                       "--save", str(tmp_path / "w.pt")])
    a, b = weights(tmp_path / "w.pt"), weights(two_epochs / "w.pt")
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) > 1e-4


def test_resume_refuses_another_batch_size(train, two_epochs):
    with pytest.raises(SystemExit, match="11 steps per epoch, this run has 22"):
        train.main(TINY + ["-b", "64", "--resume", str(two_epochs / "last.pth.tar")])


# ------------------------------------------------------------------ what timm writes
def test_summary_csv_is_timm_s(two_epochs, tmp_path):
    """summary.csv has timm's columns and bytes: timm's own update_summary, given the same
    values, writes the same file."""
    from timm.utils.summary import update_summary
    ours = (two_epochs / "summary.csv").read_bytes()
    with open(two_epochs / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for r in rows:
        update_summary(int(r["epoch"]), {"loss": float(r["train_loss"])},
                       {"loss": float(r["eval_loss"]), "top1": float(r["eval_top1"]), "top5": float(r["eval_top5"])},
                       str(tmp_path / "timm.csv"), lr=float(r["lr"]))
    assert ours == (tmp_path / "timm.csv").read_bytes()
    assert float(rows[1]["eval_top5"]) >= float(rows[1]["eval_top1"]) > 0


def test_checkpoints_load_with_timm_resume(train, two_epochs):
    """last.pth.tar as timm's train.py writes it: timm.models.resume_checkpoint restores the
    weights and the optimizer into a fresh model and says to start at epoch 2."""
    from timm.models import resume_checkpoint
    model = resdsl.build(DIGITS, sets=["width=4", "n=1"], seed=1)
    opt = torch.optim.AdamW(model.parameters())
    assert resume_checkpoint(model, str(two_epochs / "last.pth.tar"), optimizer=opt, log_info=False) == 2
    assert_same_weights(model.state_dict(), weights(two_epochs / "w.pt"), atol=0)
    ckpt = weights(two_epochs / "last.pth.tar")
    assert opt.state_dict()["state"][0]["step"] == 2 * PER_EPOCH
    saved = ckpt["optimizer"]["state"]["fc.weight"]
    torch.testing.assert_close(opt.state[model.fc.weight]["exp_avg"], saved["exp_avg"])


def test_checkpoint_history_keeps_the_best(train, tmp_path):
    train.main(TINY + ["--epochs", "3", "--checkpoint-hist", "1", "--output", str(tmp_path)])
    with open(tmp_path / "summary.csv", newline="") as f:
        top1 = [float(r["eval_top1"]) for r in csv.DictReader(f)]
    best = max(range(3), key=lambda e: (top1[e], -e))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["args.yaml", "summary.csv", "last.pth.tar", "model_best.pth.tar",
                            f"checkpoint-{best}.pth.tar"])
    assert weights(tmp_path / "model_best.pth.tar")["epoch"] == best
    assert weights(tmp_path / "last.pth.tar")["epoch"] == 2


# ------------------------------------------------------------------ flags and output
def test_timm_flag_names_and_old_aliases(train):
    a = train.parse_args(["x.res", "--model", "m", "--data-dir", "d", "--img-size", "16", "-j", "2", "-b", "32",
                          "--grad-checkpointing", "--torchcompile", "--opt", "sgd", "--sched", "step",
                          "--warmup-epochs", "1", "--amp", "--output", "o", "--checkpoint-hist", "3", "--resume", "r"])
    assert (a.network, a.data, a.image_size, a.workers, a.batch_size, a.checkpoint, a.compile, a.opt, a.sched,
            a.warmup_epochs, a.amp, a.output, a.checkpoint_hist, a.resume) == \
        ("m", "d", 16, 2, 32, "blocks", True, "sgd", "step", 1.0, True, "o", 3, "r")
    old = train.parse_args(["x.res", "-n", "m", "--data", "d", "--image-size", "16", "--workers", "2",
                            "--batch-size", "32", "--checkpoint", "sqrt", "--compile"])
    assert (old.network, old.data, old.image_size, old.workers, old.batch_size, old.checkpoint, old.compile) == \
        ("m", "d", 16, 2, 32, "sqrt", True)
    assert train.parse_args(["x.res"]).checkpoint == "none"


def test_plain_progress_lines_off_a_terminal(train, capsys):
    train.main(TINY + ["--epochs", "1", "--log-interval", "4"])
    out = capsys.readouterr().out
    assert "\r" not in out
    steps = [ln for ln in out.splitlines() if ln.startswith("epoch 1/1  step ")]
    assert [ln.split()[3] for ln in steps] == ["4/11", "8/11"] and all(" ETA 0:" in ln for ln in steps)


def test_progress_line_with_eta_on_a_terminal(tmp_path):
    """On a terminal (a real pseudo-terminal) every step rewrites one line, with the ETA."""
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, TRAIN] + TINY + ["--epochs", "1", "--steps", "3"], stdout=follower,
                         stderr=subprocess.PIPE, env=ENV)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    out = b"".join(chunks).decode()
    lines = out.split("\r")
    assert [ln.split()[3] for ln in lines if ln.startswith("epoch 1/1  step ")] == ["1/11", "2/11", "3/11"]
    assert all(" ETA 0:" in ln for ln in lines if ln.startswith("epoch 1/1  step "))


def test_amp_runs_in_bfloat16_on_the_cpu(train, tmp_path, capsys):
    train.main(TINY + ["--epochs", "1", "--steps", "3", "--save", str(tmp_path / "fp32.pt")])
    train.main(TINY + ["--epochs", "1", "--steps", "3", "--amp", "--save", str(tmp_path / "bf16.pt")])
    out = capsys.readouterr().out
    assert out.count("bf16 autocast") == 1
    a, b = weights(tmp_path / "fp32.pt"), weights(tmp_path / "bf16.pt")
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert 0 < diff < 0.05  # rounded to bfloat16, not another training


# ------------------------------------------------------------------ processes, checkpointing, data
def test_single_process_few_steps_with_checkpointing(tmp_path):
    out = run([DIGITS, "--data", "digits", "--epochs", "1", "--steps", "4", "--checkpoint", "sqrt",
               "--save", str(tmp_path / "w.pt")])
    assert "22 steps (stopping after 4)" in out and "test accuracy" in out
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert "layer1.0.conv1.weight" in state


@pytest.mark.slow
@pytest.mark.parametrize("mode", [["--fsdp"], []])
def test_torchrun_two_processes(tmp_path, mode):
    out = run([DIGITS, "--data", "digits", "--epochs", "1", "--steps", "3", "--save", str(tmp_path / "w.pt")]
              + mode, torchrun=True)
    assert "2 process(es)" in out and ("FSDP2" in out) == bool(mode)
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert state["fc.weight"].shape == (10, 32)  # full tensors, gathered from the shards


@pytest.mark.slow
def test_torchrun_fsdp_resumes_a_single_process_checkpoint(train, tmp_path):
    """A checkpoint holds full tensors (optimizer state included), so FSDP2 on 2 processes
    resumes one written by a single process, at its step."""
    train.main(TINY + ["--epochs", "2", "--steps", "3", "--output", str(tmp_path)])
    before = weights(tmp_path / "last.pth.tar")["state_dict"]
    out = run(TINY + ["--epochs", "2", "--steps", "6", "--fsdp", "--resume", str(tmp_path / "last.pth.tar"),
                      "--output", str(tmp_path)], torchrun=True)
    assert "resumed from" in out and "at step 3 (epoch 1, batch 3)" in out and "FSDP2" in out
    after = weights(tmp_path / "last.pth.tar")
    assert after["step"] == 6 and after["state_dict"].keys() == before.keys()
    assert not torch.equal(after["state_dict"]["fc.weight"], before["fc.weight"])
    assert after["optimizer"]["state"]["fc.weight"]["step"] == 6


def test_image_folder(tmp_path):
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            px = (torch.rand(12, 12, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(px).save(tmp_path / "imgs" / cls / f"{i}.png")
    out = run([str(ROOT / "examples" / "cifar_resnet.res"), "--set", "classes=2", "--data", str(tmp_path / "imgs"),
               "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--steps", "2"])
    assert "10 training images" in out and "test accuracy" in out


def test_the_script_uses_the_installed_package_not_the_checkout(tmp_path):
    """examples/train.py imports the resdsl the environment has (the wheel, an editable install),
    never the checkout beside it: a `resdsl` first on the path is the one it runs."""
    fake = tmp_path / "resdsl"
    fake.mkdir()
    (fake / "__init__.py").write_text("import sys\nprint('the installed resdsl')\nsys.exit(0)\n")
    r = subprocess.run([sys.executable, TRAIN, "--help"], capture_output=True, text=True, timeout=300,
                       env=dict(ENV, PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0 and r.stdout.strip() == "the installed resdsl", r.stdout + r.stderr
