"""Novelty distances in bounded blocks give the all-at-once scores exactly (batch scoring's memory stays flat)."""

from __future__ import annotations

import numpy as np

from monitoring.novelty import knn_scores


def test_blocked_knn_scores_equal_the_unblocked_ones():
    rng = np.random.default_rng(0)
    reference, points, groups = rng.standard_normal((120, 50)), rng.standard_normal((33, 50)), rng.integers(0, 9, 120)
    whole = knn_scores(reference=reference, points=points, k=5, block_mb=1e6)
    np.testing.assert_array_equal(knn_scores(reference=reference, points=points, k=5, block_mb=0.05), whole)
    loo = knn_scores(reference=reference, points=reference, k=5, groups=groups, block_mb=1e6)
    np.testing.assert_array_equal(
        knn_scores(reference=reference, points=reference, k=5, groups=groups, block_mb=0.01), loo
    )
