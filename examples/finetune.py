"""Fine-tune a pretrained stdlib network with a new head on a small data set.

    python examples/finetune.py                                  # resnet18, torchvision's weights, digits
    python examples/finetune.py --network resnet50 --tag a1_in1k --epochs 2

The data set is scikit-learn's 8x8 handwritten digits (shipped inside scikit-learn), upsampled
to --size pixels and repeated over 3 channels, normalised with the checkpoint's mean and std
(`resdsl.data_config`). The pretrained weights are downloaded once (torch.hub's or the Hugging
Face cache), the 1000-class head is replaced by a 10-class one, and the whole network is
trained with AdamW: a lower learning rate for the pretrained body than for the new head.
See docs/training.md ("Fine-tuning a pretrained network").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import resdsl  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", default="resnet18", help="a stdlib network with published weights")
    ap.add_argument("--tag", default=None, help="which weights (default: the reference's default; "
                                                "`resdsl weights NETWORK` lists them)")
    ap.add_argument("--images", type=int, default=400, help="training images (the rest of 1797 are the test set)")
    ap.add_argument("--test-images", type=int, default=500, help="held-out images to measure accuracy on")
    ap.add_argument("--size", type=int, default=64, help="digits are upsampled to this many pixels")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate of the new head (the body: a tenth)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def digits(size: int, mean, std):
    """scikit-learn's digits as normalised [N, 3, size, size] images and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x, torch.tensor(d.target)


def pretrained_with_new_head(network: str, tag, classes: int):
    """The pretrained network with a fresh `classes`-way head."""
    try:
        return resdsl.create_model(network, pretrained=tag or True, num_classes=classes)
    except resdsl.ResdslError as e:
        # TODO(merge): until create_model's num_classes= (the timm interface) is in, replace the head here
        if "num_classes" not in str(e):
            raise
    model = resdsl.create_model(network, pretrained=tag or True)
    model.fc = torch.nn.Linear(model.fc.in_features, classes)  # the ResNet family's head
    return model


def classifier(model):
    return model.get_classifier() if hasattr(model, "get_classifier") else model.fc


def evaluate(model, x, y, batch=256) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return (pred == y).float().mean().item()


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    model = pretrained_with_new_head(args.network, args.tag, 10)
    cfg = resdsl.data_config(model)
    x, y = digits(args.size, cfg["mean"], cfg["std"])
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    train, test = perm[:args.images], perm[args.images:args.images + args.test_images]
    head = list(classifier(model).parameters())
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr / 10}, {"params": head, "lr": args.lr}])
    print(f"{model.pretrained_cfg.name}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(train)} training images at {args.size}x{args.size}, test accuracy before: "
          f"{evaluate(model, x[test], y[test]):.2%}")
    t0, losses = time.perf_counter(), []
    for epoch in range(args.epochs):
        model.train()
        order = train[torch.randperm(len(train))]
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        acc = evaluate(model, x[test], y[test])
        print(f"epoch {epoch + 1}  loss {sum(losses[-5:]) / len(losses[-5:]):.3f}  test acc {acc:.2%}  "
              f"({time.perf_counter() - t0:.1f} s)")
    return {"losses": losses, "test_acc": acc}


if __name__ == "__main__":
    main()
