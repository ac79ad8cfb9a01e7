"""One rank of the 2-process tests in test_scale_out.py (run by torchrun; not a test module itself).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_worker.py MODE OUT.pt

MODE fsdp: FSDP2 fully_shard on every block, then the root; ddp: DistributedDataParallel.
Each rank trains on its half of one global batch; after the first step rank 0 saves the full
parameters to OUT.pt, to be compared with a single-process step on the whole batch."""
import gc
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import resdsl  # noqa: E402

# no BatchNorm, so that a sharded step equals the single-process step exactly
NET = """
block Basic(c: int, stride: int = 1) {
    residual {
        conv(c, 3, stride=stride, padding=1) as conv1 -> gn(2) as gn1 -> relu
        conv(c, 3, padding=1) as conv2 -> gn(2) as gn2
    } shortcut if stride != 1 or in.C != c { conv(c, 1, stride=stride) as 0 } as downsample
    relu
}
network tiny() {
    input x: [N, 3, H=8, W=8]
    conv(8, 3, padding=1) as stem -> relu
    repeat 2 as layer1 (i) { Basic(8) }
    repeat 2 as layer2 (i) { Basic(16, stride=2 if i == 0 else 1) }
    adaptive_avgpool(1) -> flatten -> linear(5) as fc
    @features layer1, layer2
    @classifier fc
}
"""


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 5, (8,), generator=g)


def main():
    mode, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = resdsl.build(NET, seed=0)
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard
        for _, block in reversed(resdsl.blocks(model)):  # innermost first, then the root
            fully_shard(block)
        fully_shard(model)
    else:
        model = torch.nn.parallel.DistributedDataParallel(model)
    x, y = data()
    x, y = x.chunk(world)[rank], y.chunk(world)[rank]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step == 0:
            state = model.module.state_dict() if mode == "ddp" else model.state_dict()
            state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
                     for k, v in state.items()}
            if rank == 0:
                torch.save(state, out)
    assert torch.isfinite(loss)
    if mode == "fsdp":  # timm's interface under FSDP2: its methods all-gather as forward does
        from torch.distributed.fsdp import register_fsdp_forward_method
        for name in ("forward_features", "forward_head"):
            register_fsdp_forward_method(model, name)
        with torch.no_grad():
            torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x), rtol=0, atol=0)
    # FSDP's modules sit in reference cycles: free them, and any gloo work they still hold, now
    # rather than during interpreter shutdown, where gloo aborts now and then ("terminate called
    # without an active exception"); then leave without that shutdown
    del model, opt, loss
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
