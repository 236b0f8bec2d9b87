"""Two gloo processes on the CPU give the loss and gradients of one process on the same global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.model import ModelConfig, build_model
from trainer.step import Objective, TrainModule, accumulated_step, plain_step

WORLD = 2
OBJECTIVE = Objective(tau=0.2, lambda_rec=1e-2)


def _batch():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(8, 3, 32, 32, generator=gen)
    # Pairs straddle the ranks on purpose: (0,1) on rank 0, (2,5) and (3,4) across ranks.
    labels = torch.tensor([0, 0, 1, 2, 2, 1, 3, 3])
    return x, labels


def _module():
    return TrainModule(build_model(ModelConfig(input_size=32), seed=4))


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        module = torch.nn.parallel.DistributedDataParallel(_module())
        x, labels = _batch()
        share = len(x) // WORLD
        mine = slice(rank * share, (rank + 1) * share)
        losses = accumulated_step(module, x[mine], labels[mine], OBJECTIVE, chunk_size=3)
        grads = {n: p.grad for n, p in module.module.named_parameters() if p.grad is not None}
        torch.save({"loss": losses.total, "rec": losses.reconstruction, "grads": grads}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    ctx = mp.start_processes(_worker, args=(str(tmp_path / "store"), str(tmp_path / "grads")), nprocs=WORLD,
                             join=False, start_method="spawn")
    try:
        while not ctx.join(timeout=120):
            pass
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    module = _module()
    x, labels = _batch()
    reference = plain_step(module, x, labels, OBJECTIVE)
    expected = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"grads.{rank}", weights_only=True)
        assert result["loss"] == pytest.approx(reference.total, rel=1e-5)
        assert result["rec"] == pytest.approx(reference.reconstruction, rel=1e-5)
        assert result["grads"].keys() == expected.keys()
        for name, g in expected.items():
            scale = g.abs().max().item()
            torch.testing.assert_close(result["grads"][name], g, rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name)
