"""The group-sum bootstrap: exact row draws in small groups, the moment-matched normal in large ones."""

from __future__ import annotations

import numpy as np

from mlcicd.evaluation.resample import group_sums


def test_counts_are_a_multinomial_and_sums_match_row_resampling():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1], [300, 700])
    values = rng.exponential(2.0, (1000, 2))
    counts, sums = group_sums(values, groups, 2, 4000, np.random.default_rng(1))
    assert (counts.sum(axis=1) == 1000).all()
    assert abs(counts[:, 0].mean() - 300) < 2
    # The textbook bootstrap: draw row indices, sum per group.
    textbook = []
    for _ in range(4000):
        rows = rng.integers(0, 1000, 1000)
        textbook.append(np.bincount(groups[rows], weights=values[rows, 0], minlength=2))
    textbook = np.array(textbook)
    for g in range(2):
        assert np.quantile(sums[:, g, 0], [0.05, 0.5, 0.95]) == \
            __import__("pytest").approx(np.quantile(textbook[:, g], [0.05, 0.5, 0.95]), rel=0.02)


def test_normal_approximation_agrees_with_exact_draws_in_large_groups():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 2, 40_000)
    values = np.column_stack([rng.lognormal(0, 1, 40_000), rng.normal(5, 2, 40_000)])
    normal = group_sums(values, groups, 2, 3000, np.random.default_rng(3))[1]
    exact = group_sums(values, groups, 2, 3000, np.random.default_rng(3), exact_rows=10**9)[1]
    for g in range(2):
        for k in range(2):
            q_normal = np.quantile(normal[:, g, k], [0.025, 0.5, 0.975])
            q_exact = np.quantile(exact[:, g, k], [0.025, 0.5, 0.975])
            spread = q_exact[2] - q_exact[0]
            assert np.all(np.abs(q_normal - q_exact) < 0.05 * spread), (g, k, q_normal, q_exact)
