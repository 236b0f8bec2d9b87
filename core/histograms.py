"""Counting per picture: the one histogram routine the colour, texture and silhouette descriptors share."""

from __future__ import annotations

import numpy as np


def row_counts(bins: np.ndarray, size: int, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, ...) bin numbers in [0, size) to (N, size) counts per row, each row L1-normalised.

    One ``bincount`` over the whole batch (each row's bins offset by ``size``) rather than one per
    picture. With ``mask`` (the shape of ``bins``) only its True entries count; a row with none is zeros.
    """
    n = len(bins)
    flat = bins + (np.arange(n) * size).reshape((n,) + (1,) * (bins.ndim - 1))
    counts = np.bincount(flat.ravel() if mask is None else flat[mask], minlength=n * size).reshape(n, size)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)
