"""One optimisation step's gradients: a plain full-batch pass, or logit accumulation (sec. 3.2.1).

Logit accumulation runs in three stages, after GradCache (Gao et al.):

1. embed every chunk without a graph, keeping only the projections h(f);
2. gather them across processes, compute the contrastive loss on the whole
   batch and backpropagate it to the projections only, keeping their gradient;
3. re-forward each chunk with a graph and backpropagate the surrogate
   ``<h(f), cached grad> + lambda * reconstruction``; its parameter gradient
   is exactly that chunk's share of the full-batch gradient.

Memory then grows with the chunk, not the batch: only B x 128 projections and
their gradients live across chunks. The reconstruction term is a sum over
images, so each chunk adds its own part in stage 3 and the first stage never
runs the content encoder or decoder.

With the self-supervised term each image brings a second view. The views take
the same three stages as the images: embedded in chunks without a graph,
scored with the images in one loss over the whole batch, replayed chunk by
chunk with their cached gradient (and no reconstruction: eq. 3 is over the
images only). So accumulation still gives the full-batch gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from core.model import Aladin
from trainer.losses import at_least_float32, contrastive_loss, reconstruction_error, view_loss


LOSS_ON = ("projection", "style")


class TrainModule(nn.Module):
    """What DDP wraps: the network plus its reconstruction error, as plain tensors.

    Returning tensors (not a dataclass) keeps DDP's output handling simple; the
    per-image error is computed here so the decoder output never leaves the chunk.
    The vector the contrastive terms see is h(f) (``loss_on`` "projection", the
    paper's choice) or the L2-normalised style code f itself ("style", the
    ablation of sec. 5.5 / Table 2's MLP column), which leaves the head untrained.
    """

    def __init__(self, net: Aladin, loss_on: str = "projection") -> None:
        super().__init__()
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")
        self.net = net
        self.loss_on = loss_on

    def forward(self, x: torch.Tensor, reconstruct: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(x, reconstruct=reconstruct)
        error = reconstruction_error(out.reconstruction, x) if reconstruct else None
        z = out.projection if self.loss_on == "projection" else F.normalize(out.style, dim=1)
        return z, error


@dataclass
class Objective:
    """Weights of the terms: ``lambda_con`` * eq. 2 + ``lambda_rec`` * eq. 3 + ``ssl_weight`` * views.

    ``lambda_con`` 0 with reconstruction is ALADIN-Unsup (sec. 5.3): reconstruction alone.
    """

    tau: float
    lambda_rec: float
    ssl_weight: float = 0.0
    lambda_con: float = 1.0

    @property
    def reconstruct(self) -> bool:
        return self.lambda_rec > 0

    @property
    def views(self) -> bool:
        """Whether a step needs a second view of every image (the self-supervised term is weighted)."""
        return self.ssl_weight > 0


@dataclass
class StepLosses:
    total: float
    contrastive: float
    reconstruction: float
    ssl: float


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped tensors from all ranks in rank order (no gradient)."""
    world, _ = _world()
    if world == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def _all_sum(value: torch.Tensor) -> torch.Tensor:
    world, _ = _world()
    if world > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _check_views(objective: Objective, views: torch.Tensor | None) -> None:
    if objective.views != (views is not None):
        raise ValueError("a step takes second views exactly when the self-supervised term is weighted "
                         f"(ssl_weight {objective.ssl_weight}, views {'given' if views is not None else 'none'})")


def plain_step(module: nn.Module, x: torch.Tensor, labels: torch.Tensor, objective: Objective,
               autocast: Callable = nullcontext, scaler=None, views: torch.Tensor | None = None) -> StepLosses:
    """The reference: one forward and backward over the whole (single-process) batch.

    ``views`` holds a second view of each image of ``x`` when ``objective.views``.
    """
    _check_views(objective, views)
    with autocast():
        z, error = module(x, objective.reconstruct)
        zv = module(views, False)[0] if views is not None else None
    con = contrastive_loss(z, labels, objective.tau)
    ssl = view_loss(z, zv, labels, objective.tau) if zv is not None else torch.zeros((), device=x.device)
    rec = error.mean() if error is not None else torch.zeros((), device=x.device)
    loss = objective.lambda_con * con + objective.lambda_rec * rec + objective.ssl_weight * ssl
    _backward(loss, scaler)
    return StepLosses(loss.item(), con.item(), rec.item(), ssl.item())


def _rng_states(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_states(states: tuple, device: torch.device) -> None:
    torch.set_rng_state(states[0])
    if states[1] is not None:
        torch.cuda.set_rng_state(states[1], device)


def accumulated_step(module: nn.Module, x: torch.Tensor, labels: torch.Tensor, objective: Objective,
                     chunk_size: int, autocast: Callable = nullcontext, scaler=None,
                     views: torch.Tensor | None = None) -> StepLosses:
    """Logit accumulation: the gradients of :func:`plain_step` on the global batch, chunk by chunk.

    ``x``, ``labels`` and ``views`` are this process's share of the global
    batch. Under DDP the surrogate is multiplied by the world size, because DDP
    averages gradients over ranks while each rank's share must be summed;
    gradient synchronisation runs only on the last chunk.
    """
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1")
    _check_views(objective, views)
    world, rank = _world()
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    # (input, reconstruct) pieces, views first: the last piece synchronises DDP's gradients, so it must be
    # one of the images, whose replay runs every trained branch (the decoder too when it is trained).
    view_chunks = list(views.split(chunk_size)) if views is not None else []
    pieces = [(v, False) for v in view_chunks] + [(xc, objective.reconstruct) for xc in x.split(chunk_size)]
    rng = []
    reps = []
    with torch.no_grad():
        for xc, _ in pieces:
            rng.append(_rng_states(x.device))
            with autocast():
                z, _ = inner(xc, False)
            reps.append(at_least_float32(z))
    local = torch.cat(reps[len(view_chunks):])
    everyone = gather(local).requires_grad_(True)
    global_labels = gather(labels)
    con = contrastive_loss(everyone, global_labels, objective.tau)
    mine = slice(rank * len(local), (rank + 1) * len(local))
    if views is not None:
        everyone_views = gather(torch.cat(reps[:len(view_chunks)])).requires_grad_(True)
        ssl = view_loss(everyone, everyone_views, global_labels, objective.tau)
        (objective.lambda_con * con + objective.ssl_weight * ssl).backward()
        grads = list(everyone_views.grad[mine].split(chunk_size)) + list(everyone.grad[mine].split(chunk_size))
    else:
        ssl = torch.zeros((), device=x.device)
        (objective.lambda_con * con).backward()
        grads = list(everyone.grad[mine].split(chunk_size))
    batch = len(global_labels)
    rec_sum = torch.zeros((), dtype=local.dtype, device=x.device)
    for k, ((xc, reconstruct), grad) in enumerate(zip(pieces, grads)):
        last = k == len(pieces) - 1
        sync = module.no_sync() if isinstance(module, nn.parallel.DistributedDataParallel) and not last \
            else nullcontext()
        with sync:
            _set_rng_states(rng[k], x.device)
            with autocast():
                z, error = module(xc, reconstruct)
            surrogate = (at_least_float32(z) * grad).sum()
            if error is not None:
                surrogate = surrogate + objective.lambda_rec * error.sum() / batch
                rec_sum += error.detach().sum()
            _backward(surrogate * world, scaler)
    rec = _all_sum(rec_sum) / batch
    con, ssl = con.detach(), ssl.detach()
    total = objective.lambda_con * con + objective.lambda_rec * rec + objective.ssl_weight * ssl
    return StepLosses(total.item(), con.item(), rec.item(), ssl.item())
