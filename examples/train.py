"""Train any .res network: AdamW with a cosine schedule, on one process or many (torchrun).

    python examples/train.py examples/digits.res --data digits              # ~1 min on a CPU, >= 95%
    python examples/train.py stdlib/cifar.res -n resnet56_cifar --data ~/data/cifar10 --grad-checkpointing
    python examples/train.py examples/digits.res --output runs/digits --epochs 20   # checkpoints, summary.csv
    python examples/train.py examples/digits.res --output runs/digits --epochs 20 --resume runs/digits/last.pth.tar
    torchrun --nproc_per_node 2 examples/train.py examples/digits.res --data digits --fsdp

The flags are named as timm's train.py names them (--lr, --epochs, -b/--batch-size, --opt,
--weight-decay, --sched, --warmup-epochs, --grad-checkpointing, --amp, --output, --resume,
--checkpoint-hist, --seed, -j/--workers, --log-interval); --output DIR gets timm's files:
summary.csv, args.yaml, last.pth.tar, checkpoint-<epoch>.pth.tar and model_best.pth.tar.

--data is `digits` (scikit-learn's 8x8 digits, shipped inside scikit-learn), a CIFAR-10 folder
(the python version: a folder holding cifar-10-batches-py, or that folder itself) or an ImageFolder
(class sub-folders; with train/ and val/ (or test/) sub-folders if it has them, else a 90/10 split).
Under torchrun each process trains on its share of every batch: --fsdp shards the model with FSDP2
(fully_shard on every block, then the root), otherwise DistributedDataParallel. See docs/training.md. It uses the resdsl installed in the
environment (`make setup` in a checkout, or `pip install .`), never the checkout beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_state_dict, set_model_state_dict,
                                                     set_state_dict)
from torch.utils.data import DataLoader, TensorDataset

import resdsl


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="the .res file (or a stdlib network name)")
    ap.add_argument("-n", "--network", "--model", dest="network",
                    help="network to train (when the file defines several)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a network parameter, e.g. --set classes=10")
    g = ap.add_argument_group("data")
    g.add_argument("--data", "--data-dir", dest="data", default="digits",
                   help="digits, a CIFAR-10 folder or an ImageFolder")
    g.add_argument("--image-size", "--img-size", dest="image_size", type=int, default=32,
                   help="ImageFolder images are resized to this")
    g.add_argument("-j", "--workers", type=int, default=0, help="data loader workers")
    g = ap.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("-b", "--batch-size", type=int, default=64, help="global batch size (over all processes)")
    g.add_argument("--opt", choices=["adamw", "adam", "sgd"], default="adamw", help="optimizer (default adamw)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--lr", type=float, default=3e-3)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--clip-grad", type=float, default=None, metavar="NORM", help="clip the gradient norm")
    g.add_argument("--sched", choices=["cosine", "step", "none"], default="cosine",
                   help="LR schedule, stepped every update: cosine decay to --min-lr, step (x --decay-rate "
                        "every --decay-epochs) or none (constant); all after the warmup")
    g.add_argument("--warmup-epochs", type=float, default=None,
                   help="epochs of linear warmup from --warmup-lr (default: --warmup of the steps)")
    g.add_argument("--warmup", type=float, default=0.05, metavar="FRACTION",
                   help="warmup as a fraction of all steps, when --warmup-epochs is not given (default 0.05)")
    g.add_argument("--warmup-lr", type=float, default=0.0)
    g.add_argument("--min-lr", type=float, default=0.0)
    g.add_argument("--decay-epochs", type=float, default=30, help="--sched step: epochs between decays")
    g.add_argument("--decay-rate", type=float, default=0.1, help="--sched step: LR factor at each decay")
    g.add_argument("--steps", type=int, default=0,
                   help="stop after this many steps in all (0: train all epochs), as an interruption would: "
                        "the schedule still spans --epochs, and --output saves the state to resume from")
    g.add_argument("--seed", type=int, default=0)
    g = ap.add_argument_group("speed and memory")
    g.add_argument("--grad-checkpointing", dest="checkpoint", action="store_const", const="blocks", default="none",
                   help="activation checkpointing of every block (as timm's); --checkpoint picks another mode")
    g.add_argument("--checkpoint", default="none", metavar="MODE",
                   help="activation checkpointing: none, blocks, sqrt or K (segments of K blocks)")
    g.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast (where the device supports it; no grad scaler needed)")
    g.add_argument("--compile", "--torchcompile", dest="compile", action="store_true", help="torch.compile the model")
    g.add_argument("--fsdp", action="store_true", help="under torchrun: FSDP2 per block instead of DDP")
    g.add_argument("--threads", type=int, default=0,
                   help="torch threads per process (torch.set_num_threads; 0: torch's default, which "
                        "follows OMP_NUM_THREADS)")
    g = ap.add_argument_group("output and resuming")
    g.add_argument("--output", metavar="DIR",
                   help="write summary.csv, args.yaml and checkpoints (last, checkpoint-<epoch>, model_best) here")
    g.add_argument("--checkpoint-hist", type=int, default=10,
                   help="epoch checkpoints kept: the best by test top-1 (default 10)")
    g.add_argument("--save-every", type=int, default=1, metavar="EPOCHS", help="checkpoint every N epochs")
    g.add_argument("--resume", metavar="PATH",
                   help="continue from a checkpoint: weights, optimizer, LR schedule, step and RNG state")
    g.add_argument("--no-resume-opt", action="store_true",
                   help="with --resume: take weights and position only; start the optimizer afresh")
    g.add_argument("--log-interval", type=int, default=50,
                   help="steps between progress lines when the output is not a terminal")
    g.add_argument("--save", help="write the trained state_dict here (rank 0)")
    return ap.parse_args(argv)


# ------------------------------------------------------------------ data
def digits_data(seed: int):
    """scikit-learn's 8x8 digits as [N, 1, 8, 8] tensors, a fixed 80/20 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("--data digits needs scikit-learn: pip install scikit-learn")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x = (x - x.mean()) / x.std()
    cut = int(0.8 * len(y))
    tr, te = perm[:cut], perm[cut:]
    return TensorDataset(x[tr], y[tr]), TensorDataset(x[te], y[te])


def folder_data(path: Path, size: int):
    import torchvision.transforms as T
    from torchvision import datasets
    norm = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    cifar = path if path.name == "cifar-10-batches-py" else path / "cifar-10-batches-py"
    if cifar.is_dir():
        train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
        test_tf = T.Compose([T.ToTensor(), norm])
        root = str(cifar.parent)
        return (datasets.CIFAR10(root, train=True, transform=train_tf, download=False),
                datasets.CIFAR10(root, train=False, transform=test_tf, download=False))
    train_tf = T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    test_tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), norm])
    for a, b in (("train", "val"), ("train", "test")):
        if (path / a).is_dir() and (path / b).is_dir():
            return datasets.ImageFolder(path / a, train_tf), datasets.ImageFolder(path / b, test_tf)
    full = datasets.ImageFolder(path)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(0)).tolist()
    cut = max(1, int(0.9 * len(full)))
    return (torch.utils.data.Subset(datasets.ImageFolder(path, train_tf), perm[:cut]),
            torch.utils.data.Subset(datasets.ImageFolder(path, test_tf), perm[cut:]))


class EpochOrder(torch.utils.data.Sampler):
    """The training order: a permutation drawn from (seed, epoch) alone, whole batches of it,
    this process's share (every world-th index), from batch `skip` on. A resumed run sees
    exactly the batches the interrupted one would have seen."""

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.batches = n // (batch * world)  # per process and epoch (the last partial batch is dropped)
        self.epoch = self.skip = 0
        # the DataLoader's own generator (worker seeds), so that starting an epoch draws nothing
        # from torch's global generator, which dropout uses and a checkpoint saves
        self.generator = torch.Generator().manual_seed(seed)

    def set_epoch(self, epoch: int, skip: int = 0):
        self.epoch, self.skip = epoch, skip
        self.generator.manual_seed(self.seed + epoch)

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        mine = perm[:self.batches * self.batch * self.world][self.rank::self.world]
        return iter(mine[self.skip * self.batch:].tolist())

    def __len__(self):
        return (self.batches - self.skip) * self.batch


# ------------------------------------------------------------------ model and schedule
def setup_distributed():
    """(rank, world size, device); torchrun sets RANK and WORLD_SIZE."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    return dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if cuda else "cpu")


def wrap(model, args, world, device):
    if world > 1 and args.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16) if args.amp and device.type == "cuda" \
            else MixedPrecisionPolicy()
        for _, block in reversed(resdsl.blocks(model)):  # every block (innermost first), then the root
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
    elif world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index is not
                                                          None else None)
    if args.compile:
        model = torch.compile(model)
    return model


def optimizer(model, args):
    params = model.parameters()
    if args.opt == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                               nesterov=True)
    kind = torch.optim.AdamW if args.opt == "adamw" else torch.optim.Adam
    return kind(params, lr=args.lr, weight_decay=args.weight_decay)


def lr_factor(step: int, args, total: int, per_epoch: int) -> float:
    """The factor on --lr at `step` (0-based): linear warmup from --warmup-lr, then --sched."""
    w = round(args.warmup_epochs * per_epoch) if args.warmup_epochs is not None else int(args.warmup * total)
    w = max(1, w)
    if step < w:
        return (args.warmup_lr + (args.lr - args.warmup_lr) * (step + 1) / w) / args.lr
    if args.sched == "none":
        return 1.0
    if args.sched == "step":
        return args.decay_rate ** int((step - w) / max(1, round(args.decay_epochs * per_epoch)))
    t = min(1.0, (step - w) / max(1, total - w))
    return (args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + math.cos(math.pi * t))) / args.lr


def autocast(args, device, rank):
    """bfloat16 autocast for --amp where the device has it; otherwise say so and train in float32."""
    if not args.amp:
        return contextlib.nullcontext
    why = None
    if not torch.amp.is_autocast_available(device.type):
        why = f"torch has no autocast for {device.type}"
    elif device.type == "cuda" and not torch.cuda.is_bf16_supported():
        why = f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16"
    if why:
        if rank == 0:
            print(f"--amp: {why}; training in float32", flush=True)
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def evaluate(model, loader, device, world, amp):
    """(loss, top-1 %, top-5 %) on the test set, over all processes."""
    model.eval()
    t = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, images
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with amp():
                out = model(x)
            out = out.float()
            top = out.topk(min(5, out.shape[1]), dim=1).indices
            t += torch.tensor([F.cross_entropy(out, y, reduction="sum").item(), (top[:, 0] == y).sum().item(),
                               (top == y[:, None]).any(1).sum().item(), len(y)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t)
    model.train()
    return (t[0] / t[3]).item(), (100 * t[1] / t[3]).item(), (100 * t[2] / t[3]).item()


# ------------------------------------------------------------------ progress, summary.csv, checkpoints
def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """On a terminal one line per step, rewritten in place, with the ETA of the run; otherwise
    (a log file, a pipe) a plain line every --log-interval steps."""

    def __init__(self, args, total: int, first: int, per_epoch: int):
        self.tty = sys.stdout.isatty()
        self.every = max(1, args.log_interval)
        self.total, self.first, self.per_epoch, self.epochs = total, first, per_epoch, args.epochs
        self.t0 = time.perf_counter()
        self.width = 0

    def step(self, step: int, loss: float, lr: float, images: int):
        if not self.tty and step % self.every:
            return
        took = time.perf_counter() - self.t0
        done = step - self.first
        eta = took / max(done, 1) * (self.total - step)
        epoch, within = (step - 1) // self.per_epoch + 1, (step - 1) % self.per_epoch + 1
        line = (f"epoch {epoch}/{self.epochs}  step {within}/{self.per_epoch}  loss {loss:.4f}  lr {lr:.2e}  "
                f"{images / max(took, 1e-9):.0f} img/s  ETA {clock(eta)}")
        if self.tty:
            sys.stdout.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def end_line(self):
        if self.tty and self.width:
            sys.stdout.write("\n")
            self.width = 0


SUMMARY_FIELDS = ["epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "lr"]


def trim_summary(path: Path, start_epoch: int):
    """Drop rows of epochs at or after `start_epoch` (a resumed run writes them again; a fresh
    run, start_epoch 0, starts a new file), as timm does."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["epoch"]) < start_epoch]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, SUMMARY_FIELDS)
        if keep:
            w.writeheader()
            w.writerows(keep)


def update_summary(path: Path, row: dict):
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, SUMMARY_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def full_state(model, opt):
    """(model, optimizer) state dicts as full CPU tensors, on every process (under FSDP2 the
    shards are gathered; DDP's `module.` and torch.compile's `_orig_mod.` prefixes are dropped)."""
    return get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


class Saver:
    """timm's checkpoint files in --output: last.pth.tar (the latest state), checkpoint-<epoch>.pth.tar
    for the --checkpoint-hist best epochs by test top-1 (ties keep the earlier), model_best.pth.tar."""

    def __init__(self, folder: Path, keep: int, state: dict | None = None):
        self.folder, self.keep = folder, max(0, keep)
        self.history = [tuple(h) for h in (state or {}).get("history", [])]  # (top-1, epoch), best first

    def state(self):
        return {"history": [list(h) for h in self.history]}

    def _write(self, ckpt: dict, name: str):
        tmp = self.folder / (name + ".tmp")
        torch.save(ckpt, tmp)
        os.replace(tmp, self.folder / name)  # never a half-written checkpoint

    def save(self, ckpt: dict, epoch: int | None = None, metric: float | None = None):
        """Write last.pth.tar; with an epoch and its metric, also rank that epoch's checkpoint."""
        if epoch is not None:
            self.history = sorted(self.history + [(metric, epoch)], key=lambda h: (-h[0], h[1]))
        ckpt = dict(ckpt, saver=self.state())
        self._write(ckpt, "last.pth.tar")
        if epoch is None:
            return
        for _, old in self.history[self.keep:]:
            (self.folder / f"checkpoint-{old}.pth.tar").unlink(missing_ok=True)
        self.history = self.history[:self.keep]
        if any(e == epoch for _, e in self.history):
            self._write(ckpt, f"checkpoint-{epoch}.pth.tar")
        if self.history and self.history[0][1] == epoch:
            self._write(ckpt, "model_best.pth.tar")


def checkpoint(model, opt, sched, args, step, per_epoch, epoch_loss, metric=None):
    """Everything a resume needs (loaded again with torch.load(weights_only=True): tensors and
    plain values only)."""
    weights, optim = full_state(model, opt)
    epoch, batch = divmod(step, per_epoch)
    return {"epoch": epoch - 1 if batch == 0 else epoch,  # timm's: the last epoch (0-based) in it
            "step": step, "batch": batch, "steps_per_epoch": per_epoch, "epoch_loss": list(epoch_loss),
            "arch": args.network or Path(args.file).stem, "state_dict": weights, "optimizer": optim,
            "scheduler": sched.state_dict(), "rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "args": {k: v for k, v in vars(args).items()}, "metric": metric, "version": 2}


def resume(path, model, opt, sched, args, per_epoch, rank):
    """Load a checkpoint of this script; returns (first step, the epoch's (loss sum, images), saver state)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "step" not in ckpt or "state_dict" not in ckpt:
        sys.exit(f"--resume {path}: not a checkpoint of examples/train.py (no step or state_dict)")
    if ckpt["steps_per_epoch"] != per_epoch:
        sys.exit(f"--resume {path}: it was written with {ckpt['steps_per_epoch']} steps per epoch, this run has "
                 f"{per_epoch}; resume with the same data, --batch-size and number of processes")
    if args.no_resume_opt:
        set_model_state_dict(model, ckpt["state_dict"], options=StateDictOptions(full_state_dict=True))
        with warnings.catch_warnings():  # stepped before the optimizer on purpose
            warnings.simplefilter("ignore")
            for _ in range(ckpt["step"]):  # the schedule at the step reached; the optimizer starts afresh
                sched.step()
    else:
        set_state_dict(model, opt, model_state_dict=ckpt["state_dict"], optim_state_dict=ckpt["optimizer"],
                       options=StateDictOptions(full_state_dict=True))
        sched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng_state"])
    if ckpt.get("cuda_rng_state") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(ckpt["cuda_rng_state"])
    if rank == 0:
        print(f"resumed from {path} at step {ckpt['step']} (epoch {ckpt['step'] // per_epoch + 1}, "
              f"batch {ckpt['batch']})", flush=True)
    return ckpt["step"], tuple(ckpt.get("epoch_loss") or (0.0, 0)), ckpt.get("saver")


# ------------------------------------------------------------------ training
def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed()
    torch.manual_seed(args.seed)
    train_set, test_set = digits_data(args.seed) if args.data == "digits" else \
        folder_data(Path(args.data).expanduser(), args.image_size)
    per_rank = max(1, args.batch_size // world)
    order = EpochOrder(len(train_set), per_rank, args.seed, rank, world)
    per_epoch = order.batches
    if per_epoch == 0:
        sys.exit(f"{len(train_set)} training images make no batch of {args.batch_size}: lower --batch-size")
    train = DataLoader(train_set, per_rank, sampler=order, drop_last=True, num_workers=args.workers,
                       generator=order.generator)
    test_sampler = torch.utils.data.distributed.DistributedSampler(test_set, world, rank, shuffle=False) \
        if world > 1 else None
    test = DataLoader(test_set, 256, sampler=test_sampler, num_workers=args.workers)

    model = resdsl.build(args.file, args.network, seed=args.seed, sets=args.sets, checkpoint=args.checkpoint)
    model = model.to(device)
    nparams = sum(p.numel() for p in model.parameters())
    model = wrap(model, args, world, device)
    opt = optimizer(model, args)
    end = args.epochs * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, args, end, per_epoch))
    amp = autocast(args, device, rank)
    step, epoch_loss, saver_state = 0, (0.0, 0), None
    if args.resume:
        step, epoch_loss, saver_state = resume(args.resume, model, opt, sched, args, per_epoch, rank)
    stop = min(end, args.steps) if args.steps else end
    out = Path(args.output) if args.output else None
    saver = None
    if out is not None and rank == 0:
        import yaml
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.yaml").write_text(yaml.safe_dump(vars(args), sort_keys=False))
        trim_summary(out / "summary.csv", step // per_epoch)
        saver = Saver(out, args.checkpoint_hist, saver_state)
    if rank == 0:
        print(f"{args.file}: {nparams:,} parameters, {len(train_set)} training images, {world} process(es), "
              f"{device}, {torch.get_num_threads()} thread(s) per process, {end} steps"
              + (f" (stopping after {stop})" if stop < end else "")
              + (", FSDP2" if args.fsdp and world > 1 else "")
              + (", bf16 autocast" if amp is not contextlib.nullcontext else ""), flush=True)
    progress = Progress(args, stop, step, per_epoch)
    t0, images, acc = time.perf_counter(), 0, None
    while step < stop:
        epoch, skip = divmod(step, per_epoch)
        order.set_epoch(epoch, skip)
        loss_sum, seen = epoch_loss if skip else (0.0, 0)
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with amp():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            images += len(y) * world
            step += 1
            if rank == 0:
                progress.step(step, loss_sum / seen, lr, images)
            if step >= stop:
                break
        epoch_loss = (loss_sum, seen)
        if rank == 0:
            progress.end_line()
        done = step % per_epoch == 0
        eval_loss, acc, top5 = evaluate(model, test, device, world, amp)
        t = torch.tensor([loss_sum, seen], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(t)
        train_loss = (t[0] / max(t[1], 1)).item()
        if rank == 0:
            print(f"epoch {epoch + 1:3d}  step {step:5d}  loss {train_loss:.4f}  test acc {acc:.2f}%  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        if done and out is not None and rank == 0:
            update_summary(out / "summary.csv", {"epoch": epoch, "train_loss": train_loss, "eval_loss": eval_loss,
                                                 "eval_top1": acc, "eval_top5": top5, "lr": lr})
        if out is not None and (not done or (epoch + 1) % args.save_every == 0 or step >= stop):
            ckpt = checkpoint(model, opt, sched, args, step, per_epoch, epoch_loss, acc if done else None)
            if rank == 0:
                saver.save(ckpt, epoch if done else None, acc if done else None)
    if rank == 0 and acc is not None:
        print(f"test accuracy {acc:.2f}% after {step} steps, {time.perf_counter() - t0:.1f} s", flush=True)
    if args.save:
        state, _ = full_state(model, opt)
        if rank == 0:
            torch.save(state, args.save)
    if world > 1:
        # FSDP's modules sit in reference cycles: free them (and the gloo work they may hold) while
        # the process group is alive, not during interpreter shutdown, where gloo can abort
        model = opt = sched = loss = state = None
        gc.collect()
        dist.barrier()  # no rank tears gloo down while another still talks to it (rank 0 may be saving)
        dist.destroy_process_group()
    return None if acc is None else acc / 100


if __name__ == "__main__":
    main()
