"""Train any .res network: AdamW with a cosine schedule, on one process or many (torchrun).

    python examples/train.py examples/digits.res --data digits              # ~1 min on a CPU, >= 95%
    python examples/train.py stdlib/cifar.res -n resnet56_cifar --data ~/data/cifar10 --checkpoint sqrt
    torchrun --nproc_per_node 2 examples/train.py examples/digits.res --data digits --fsdp

--data is `digits` (scikit-learn's 8x8 digits, shipped inside scikit-learn), a CIFAR-10 folder
(the python version: a folder holding cifar-10-batches-py, or that folder itself) or an ImageFolder
(class sub-folders; with train/ and val/ (or test/) sub-folders if it has them, else a 90/10 split).
Under torchrun each process trains on its share of every batch: --fsdp shards the model with FSDP2
(fully_shard on every block, then the root), otherwise DistributedDataParallel. On CUDA the forward
runs in bfloat16 autocast. See docs/training.md. It uses the resdsl installed in the environment
(`make setup` in a checkout, or `pip install .`), never the checkout beside it.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import resdsl


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="the .res file")
    ap.add_argument("-n", "--network", help="network to train (when the file defines several)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a network parameter, e.g. --set classes=10")
    ap.add_argument("--data", default="digits", help="digits, a CIFAR-10 folder or an ImageFolder")
    ap.add_argument("--image-size", type=int, default=32, help="ImageFolder images are resized to this")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: train all epochs)")
    ap.add_argument("--batch-size", type=int, default=64, help="global batch size (over all processes)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps with a linear warmup")
    ap.add_argument("--checkpoint", default="none", help="activation checkpointing: none, blocks, sqrt or k")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--fsdp", action="store_true", help="under torchrun: FSDP2 per block instead of DDP")
    ap.add_argument("--workers", type=int, default=0, help="data loader workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", help="write the trained state_dict here (rank 0)")
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


# ------------------------------------------------------------------ training
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
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16) if device.type == "cuda" else MixedPrecisionPolicy()
        for _, block in reversed(resdsl.blocks(model)):  # every block (innermost first), then the root
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
    elif world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index is not
                                                          None else None)
    if args.compile:
        model = torch.compile(model)
    return model


def cosine(step, total, warmup):
    """Linear warmup, then cosine decay to zero: the factor on the base learning rate."""
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))


def evaluate(model, loader, device, world):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(x)
            correct += (out.argmax(1) == y).sum().item()
            total += len(y)
    t = torch.tensor([correct, total], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t)
    model.train()
    return (t[0] / t[1]).item()


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = setup_distributed()
    torch.manual_seed(args.seed)
    train_set, test_set = digits_data(args.seed) if args.data == "digits" else \
        folder_data(Path(args.data).expanduser(), args.image_size)
    sampler = torch.utils.data.distributed.DistributedSampler(train_set, world, rank, seed=args.seed) \
        if world > 1 else None
    test_sampler = torch.utils.data.distributed.DistributedSampler(test_set, world, rank, shuffle=False) \
        if world > 1 else None
    per_rank = max(1, args.batch_size // world)
    train = DataLoader(train_set, per_rank, shuffle=sampler is None, sampler=sampler, drop_last=True,
                       num_workers=args.workers)
    test = DataLoader(test_set, 256, sampler=test_sampler, num_workers=args.workers)

    model = resdsl.build(args.file, args.network, seed=args.seed, sets=args.sets, checkpoint=args.checkpoint)
    model = model.to(device)
    nparams = sum(p.numel() for p in model.parameters())
    model = wrap(model, args, world, device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * len(train)
    if args.steps:
        total = min(total, args.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s, total, args.warmup))
    if rank == 0:
        print(f"{args.file}: {nparams:,} parameters, {len(train_set)} training images, {world} process(es), "
              f"{device}, {total} steps" + (", FSDP2" if args.fsdp and world > 1 else ""), flush=True)
    step, t0 = 0, time.perf_counter()
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        seen = loss_sum = 0.0
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            step += 1
            if step >= total:
                break
        acc = evaluate(model, test, device, world)
        if rank == 0:
            print(f"epoch {epoch + 1:3d}  step {step:5d}  loss {loss_sum / max(seen, 1):.4f}  "
                  f"test acc {100 * acc:.2f}%  ({time.perf_counter() - t0:.1f} s)", flush=True)
        if step >= total:
            break
    if rank == 0:
        print(f"test accuracy {100 * acc:.2f}% after {step} steps, {time.perf_counter() - t0:.1f} s", flush=True)
    if args.save:
        inner = model._orig_mod if hasattr(model, "_orig_mod") else model
        inner = inner.module if isinstance(inner, torch.nn.parallel.DistributedDataParallel) else inner
        state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu()
                 for k, v in inner.state_dict().items()}
        if rank == 0:
            torch.save(state, args.save)
    if world > 1:
        # FSDP's modules sit in reference cycles: free them (and the gloo work they may hold) while
        # the process group is alive, not during interpreter shutdown, where gloo can abort
        model = opt = sched = loss = inner = None
        gc.collect()
        dist.barrier()  # no rank tears gloo down while another still talks to it (rank 0 may be saving)
        dist.destroy_process_group()
    return acc


if __name__ == "__main__":
    main()
