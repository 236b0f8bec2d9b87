"""The shared per-picture counting routine of the colour, texture and silhouette descriptors."""

from __future__ import annotations

import numpy as np

from core.histograms import row_counts


def test_rows_are_counted_apart_and_a_mask_leaves_entries_and_whole_rows_out():
    bins = np.array([[[0, 1], [1, 2]], [[2, 2], [2, 2]], [[0, 0], [3, 3]]])
    assert np.array_equal(row_counts(bins, 4), [[0.25, 0.5, 0.25, 0], [0, 0, 1, 0], [0.5, 0, 0, 0.5]])
    mask = np.array([[[True, False], [False, False]], [[False] * 2] * 2, [[False, False], [True, True]]])
    assert np.array_equal(row_counts(bins, 4, mask), [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
