"""The training objective: eq. 2 (contrastive) + lambda * eq. 3 (L1 reconstruction), eq. 4, and an optional
self-supervised term.

Both paper terms are means over the batch rather than the paper's sums: the
ratio between them (and so the meaning of lambda = 1e-2) is unchanged, and the
learning rate does not have to follow the batch size.

Scale of the reconstruction term: eq. 3's |f(b) - b| is read as the mean
absolute error per pixel and channel, on the network's normalised input
((x / 255 - mean) / std with ImageNet statistics, so one unit is about 0.23 of
the full 0-1 intensity range). A sum over the 256 x 256 x 3 values instead
would multiply the term by 196,608, and at lambda = 1e-2 reconstruction would
outweigh the contrastive term by orders of magnitude; the paper's retrieval
figures need the contrastive term to lead, so the mean is the reading that fits.

Temperature: the paper gives no value for tau, only "as in SimCLR". 0.1 is
the temperature SimCLR's ablation favoured for L2-normalised embeddings and the
one supervised contrastive learning (Khosla et al. 2020) uses; every model here,
the bundled one included, was trained with it.

The self-supervised term (:func:`view_loss`, weighted by ``--ssl-weight``) adds
the positives that style-retrieval work such as CSD (Somepalli et al. 2024)
pairs with its label loss: two views of one picture, cropped and scaled
differently, are the same style whatever group they carry. Group labels only
say that two images share a style; they never say that a crop of a picture at
another scale does, and a model trained on groups alone can lean on whatever
a source's groups happen to share (its palette, its subject) instead.
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
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    return _masked_contrastive(z, same & ~eye, ~same, tau)


def view_loss(z: torch.Tensor, views: torch.Tensor, labels: torch.Tensor, tau: float = DEFAULT_TAU) -> torch.Tensor:
    """The self-supervised term: eq. 2 over the 2B rows ``[z; views]`` with each image's two views as positives.

    Row i of ``views`` is another view of the image of row i of ``z``. The
    negatives are the rows of other groups only: another image of the anchor's
    own group shares its style, so pushing it away would fight the group term.
    An image alone in its group (``labels`` unique) still has its other view,
    so images that no group describes train the model too.
    """
    if views.shape != z.shape or labels.shape != (z.shape[0],):
        raise ValueError(f"expected z and views (B, D) and labels (B,), got {tuple(z.shape)}, "
                         f"{tuple(views.shape)} and {tuple(labels.shape)}")
    image = torch.arange(len(labels), device=z.device).repeat(2)
    group = labels.repeat(2)
    eye = torch.eye(len(image), dtype=torch.bool, device=z.device)
    pos = (image[:, None] == image[None, :]) & ~eye
    neg = group[:, None] != group[None, :]
    return _masked_contrastive(torch.cat([z, views]), pos, neg, tau)


def _masked_contrastive(z: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 2 for any positive and negative masks (B, B); rows that are neither are left out of both sums."""
    z = at_least_float32(z)
    logits = z @ z.t() / tau
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        raise ValueError("the batch has no anchor with both a positive and a negative")
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
    log_neg = torch.logsumexp(logits.masked_fill(~neg, neg_inf), dim=1)
    return (log_neg - log_pos)[valid].mean()


def reconstruction_error(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 3 per image: mean absolute error over pixels and channels of the normalised input, shape (B,)."""
    return (at_least_float32(reconstruction) - at_least_float32(target)).abs().flatten(1).mean(1)
