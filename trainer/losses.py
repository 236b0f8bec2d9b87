"""The training objective: eq. 2 (contrastive) + lambda * eq. 3 (L1 reconstruction), eq. 4.

Both terms are means over the batch rather than the paper's sums: the ratio
between them (and so the meaning of lambda = 1e-2) is unchanged, and the
learning rate does not have to follow the batch size.
"""

from __future__ import annotations

import torch

DEFAULT_TAU = 0.1
DEFAULT_LAMBDA = 1e-2


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Half-precision activations (autocast) are lifted to float32 for the loss; doubles stay."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def contrastive_loss(z: torch.Tensor, labels: torch.Tensor, tau: float = DEFAULT_TAU) -> torch.Tensor:
    """Eq. 2 averaged over anchors: -log(sum_pos exp(z_i.z_p/tau) / sum_neg exp(z_i.z_n/tau)).

    As in the paper the denominator runs over the negatives only (G_i^- = B minus
    the anchor and its positives). ``labels`` give the group of each row, so the
    same code serves a pair batch and a gathered multi-process batch. Anchors
    without a positive or without a negative contribute nothing.
    """
    if z.dim() != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"expected z (B, D) and labels (B,), got {tuple(z.shape)} and {tuple(labels.shape)}")
    z = at_least_float32(z)
    logits = z @ z.t() / tau
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    pos = same & ~eye
    neg = ~same
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        raise ValueError("the batch has no anchor with both a positive and a negative")
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
    log_neg = torch.logsumexp(logits.masked_fill(~neg, neg_inf), dim=1)
    return (log_neg - log_pos)[valid].mean()


def reconstruction_error(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 3 per image: mean absolute error over pixels and channels, shape (B,)."""
    return (at_least_float32(reconstruction) - at_least_float32(target)).abs().flatten(1).mean(1)
