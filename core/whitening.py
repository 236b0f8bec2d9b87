"""Shrunk PCA whitening of finished search vectors.

The fused vector's parts (network, colour, gradients, patterns) are unit vectors whose dimensions
are far from independent: a few directions (flat background, the grey that transparency is
composited onto, the overall amount of edges) carry most of the variance of any collection of
pictures and dominate every cosine, whatever the style. Whitening divides each principal direction
by a power of its spread, so the many small differences that tell styles apart vote too; shrinking
the covariance toward a multiple of the identity keeps directions the fit saw little of from being
blown up. On art none of the model's data came from (resources/models/MODEL.md, "Whitening"), with the
fusion weights chosen again under it, the bundled model's mean of per-source P@1 and mAP rose from 0.484
to 0.535, icon-theme P@1 / mAP from 0.550 / 0.184 to 0.617 / 0.211 and card-deck mAP from 0.564 to 0.649.

A whitening can also keep only the strongest principal directions (``dims``): the weakest hold what
the fit saw least of, and cutting them makes every vector in the index and every comparison shorter.
The default keeps 1,024 of 2,023 and scores as the full whitening does (MODEL.md, "Contrast patterns and
a shorter whitening").

A whitening is fitted once, on training images, and stored in the model file
(:mod:`core.modelfile`), so a model's vectors never depend on the library they are in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Whitening:
    """``(v - mean) @ matrix``, then unit length; ``matrix`` is (D, K) with K <= D: each column a principal
    direction scaled by its variance's power (a square, symmetric matrix in files from before reduced
    whitenings, which rotated back; cosines are the same).

    ``fitted_for`` names the vectors it was fitted on (:func:`core.modelfile.vector_layout`): the same
    model with other fusion weights or another input size makes other vectors, which it must not touch.
    """

    mean: np.ndarray
    matrix: np.ndarray
    fitted_for: tuple = ()

    @property
    def dim(self) -> int:
        """Length of the vectors it whitens."""
        return len(self.mean)

    @property
    def out_dim(self) -> int:
        """Length of the vectors it makes."""
        return self.matrix.shape[1]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        out = (np.asarray(vectors, np.float32) - self.mean) @ self.matrix
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    @classmethod
    def fit(cls, vectors: np.ndarray, power: float, shrink: float, fitted_for: tuple = (),
            dims: int | None = None) -> "Whitening":
        """Fit on ``vectors`` (N, D): each principal direction scaled by ``variance ** -(power / 2)``.

        ``power`` 1 whitens fully, 0 only centres; ``shrink`` in [0, 1] mixes the covariance with
        the identity times its mean variance first; ``dims`` keeps that many of the strongest
        directions (None or D: all).

        Raises:
            ValueError: fewer than two vectors, non-finite values, or settings out of range.
        """
        x = np.asarray(vectors, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"whitening needs at least two vectors, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("whitening cannot be fitted on NaN or infinite values")
        if not 0.0 <= power <= 1.0 or not 0.0 <= shrink <= 1.0:
            raise ValueError(f"whitening power and shrink must lie in [0, 1], got {power} and {shrink}")
        keep = x.shape[1] if dims is None else int(dims)
        if not 1 <= keep <= x.shape[1]:
            raise ValueError(f"a whitening keeps 1 to {x.shape[1]} directions of these vectors, not {dims}")
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / len(x)
        dim = len(cov)
        cov = (1.0 - shrink) * cov + shrink * np.trace(cov) / dim * np.eye(dim)
        variances, directions = np.linalg.eigh(cov)
        floor = max(float(variances.max()), 1e-12) * 1e-9
        strongest = np.argsort(variances)[::-1][:keep]
        scale = np.power(np.maximum(variances[strongest], floor), -power / 2.0)
        matrix = directions[:, strongest] * scale
        return cls(mean=mean.astype(np.float32), matrix=matrix.astype(np.float32), fitted_for=fitted_for)
