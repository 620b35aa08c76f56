"""Non-inferiority of the canary's error rate: the decision is the bound the message reports."""

import math
import re

import numpy as np
import pytest

from mlcicd.delivery.claims import Margin, noninferior

ALPHA = 0.05
ONE = np.ones(1)


def _claim(xc, nc, xs, ns, margin, explain=True):
    return noninferior(ONE * xc, ONE * xs, ONE * nc, ONE * ns, margin, ALPHA, explain=explain)


def test_the_issues_case_promotes_with_a_one_point_margin():
    """canary 790/17,946 vs stable 6,960/162,000: the gap is ~0.99 points at the old bounds, within 1.00."""
    for margin in (Margin(1.0, 0.01), Margin(1.5, 0.01)):
        shown = _claim(790, 17946, 6960, 162000, margin)
        assert shown.shown
        assert shown.excess_upper is not None and shown.excess_upper <= 0.01
        assert "at most" in shown.bounds_text()


@pytest.mark.parametrize("additive", [True, False])
def test_decision_and_message_never_disagree_on_random_counts(additive):
    rng = np.random.default_rng(1)
    disagreements, shown_any = 0, 0
    for _ in range(300):
        nc, ns = rng.integers(50, 40000), rng.integers(50, 200000)
        pc, ps = rng.uniform(0, 0.06), rng.uniform(0, 0.06)
        xc, xs = rng.binomial(nc, pc), rng.binomial(ns, ps)
        margin = Margin(float(rng.choice([1.0, 1.2, 1.5, 2.0])), float(rng.choice([0.0, 0.001, 0.005, 0.01])),
                        additive)
        if margin.ratio == 1 and margin.floor == 0:
            continue
        s = _claim(xc, nc, xs, ns, margin)
        shown_any += s.shown
        # What the message says: D <= the excess bound (additive), or the ratio / difference bounds (max-shape).
        d = s.excess_upper
        by_bound = d is not None and d <= margin.floor + 1e-12
        by_ratio = s.ratio_upper is not None and math.isfinite(s.ratio_upper) and (
            (s.ratio_upper - margin.ratio) * (s.stable_upper or 0.0) <= margin.floor + 1e-12 if additive
            else s.ratio_upper <= margin.ratio + 1e-9)
        disagreements += s.shown != (by_bound or by_ratio)
        if s.shown:  # a promote message carries a bound within what is allowed
            text = s.bounds_text()
            figures = [float(x) for x in re.findall(r"at most ([+-]?[\d.]+) points", text)]
            assert (figures and min(figures) <= 100 * margin.floor + 0.005) or "ratio at most" in text
    assert disagreements == 0
    assert shown_any > 20


def test_a_canary_worse_than_the_margin_is_shown_no_worse_at_most_alpha_of_the_time_at_any_look():
    rng = np.random.default_rng(2)
    margin = Margin(1.5, 0.001)
    wrong, runs = 0, 200
    for _ in range(runs):
        # On the margin's edge: stable 1%, canary 1.5% + 0.1 point, 40 looks of 10 s at 30% weight.
        nc, ns = rng.poisson(300, 40).astype(float), rng.poisson(700, 40).astype(float)
        xc, xs = rng.binomial(nc.astype(int), 0.016).astype(float), rng.binomial(ns.astype(int), 0.01).astype(float)
        wrong += any(noninferior(xc[:k], xs[:k], nc[:k], ns[:k], margin, ALPHA).shown for k in range(1, 41))
    assert wrong / runs <= ALPHA + 0.03


def test_healthy_canaries_are_shown_no_worse_near_zero_and_at_ordinary_rates():
    margin = Margin(1.5, 0.001)
    assert _claim(0, 6000, 0, 6000, margin).shown  # 0% next to 0%: the floor decides
    assert _claim(100, 10000, 300, 30000, margin).shown  # 1% next to 1%: the ratio decides
    assert _claim(100, 10000, 300, 30000, margin).ratio_shown
    assert not _claim(3, 300, 9, 900, margin).shown  # too little data yet
    assert not _claim(200, 10000, 300, 30000, margin).shown  # 2% next to 1%: outside x1.5 + 0.1 points


def test_the_step_margin_never_passes_a_doubled_rate_yet_decides_fast_near_zero():
    step = Margin(2.0, 0.005, additive=False)
    assert step.allowed(0.01) == pytest.approx(0.02) and step.allowed(0.001) == pytest.approx(0.006)
    assert not _claim(400, 20000, 200, 20000, step).shown  # exactly x2 at 1%: never shown
    assert _claim(0, 1500, 0, 1500, step).shown  # nothing failed on either side: +0.5 points shown quickly


def test_margins_describe_themselves():
    assert Margin(1.5, 0.001).describe() == "\u00d71.5 the stable's rate + 0.1 points"
    assert Margin(2.0, 0.005, additive=False).short() == "\u2264 max(\u00d72, +0.5 pt)"
    assert Margin(1.0, 0.01).allowed(0.02) == pytest.approx(0.03)
