"""The two tests behind alerts, as pure functions (unit-tested directly).

Volume spike: is this period's count improbably high given the topic's previous periods? The
count is modelled as negative binomial with the history's mean and variance (method of
moments), which falls back to Poisson when the history is not over-dispersed; the p-value is
the upper tail P(X >= observed). Sentiment drop: is this period's share of negative complaints
higher than in the history? One-sided two-proportion z-test with the pooled proportion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

SPIKE_METHOD = (
    "negative-binomial upper tail P(X >= observed), mean and variance from the previous "
    "{k} periods (Poisson when they are not over-dispersed)"
)
DROP_METHOD = (
    "one-sided two-proportion z-test: share negative in the period vs the pooled previous "
    "{k} periods"
)
# A history of zeros would make any count infinitely surprising: the mean is floored here.
MIN_EXPECTED = 0.5


@dataclass(frozen=True)
class SpikeTest:
    observed: int
    expected: float
    variance: float
    p_value: float
    distribution: str  # "poisson" or "negative_binomial"


@dataclass(frozen=True)
class DropTest:
    observed_share: float
    expected_share: float
    z: float
    p_value: float


def volume_spike_test(observed: int, history: Sequence[int]) -> SpikeTest:
    """Upper-tail test of `observed` against the history's count distribution."""
    if len(history) < 2:
        raise ValueError("a volume test needs at least 2 periods of history")
    raw_mean = sum(history) / len(history)
    variance = sum((h - raw_mean) ** 2 for h in history) / (len(history) - 1)
    mean = max(raw_mean, MIN_EXPECTED)
    if observed <= 0:
        return SpikeTest(observed, mean, variance, 1.0, "poisson")
    if variance > mean:
        # NB with mean m and variance v: n = m^2 / (v - m) successes, p = m / v.
        n = mean * mean / (variance - mean)
        p_value = float(stats.nbinom.sf(observed - 1, n, mean / variance))
        distribution = "negative_binomial"
    else:
        p_value = float(stats.poisson.sf(observed - 1, mean))
        distribution = "poisson"
    return SpikeTest(observed, round(mean, 4), round(variance, 4), p_value, distribution)


def sentiment_drop_test(
    negative: int, total: int, history_negative: int, history_total: int
) -> DropTest:
    """One-sided test that the negative share rose; z and p are 0 and 1 when it cannot."""
    if total <= 0 or history_total <= 0:
        raise ValueError("a sentiment test needs complaints in the period and in its history")
    p1 = negative / total
    p0 = history_negative / history_total
    pooled = (negative + history_negative) / (total + history_total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / total + 1 / history_total))
    if se == 0:
        return DropTest(p1, p0, 0.0, 1.0)
    z = (p1 - p0) / se
    return DropTest(round(p1, 4), round(p0, 4), round(z, 4), float(stats.norm.sf(z)))


def bonferroni_threshold(sensitivity: float, tests: int) -> float:
    """Per-test level keeping the chance of any false alarm in one answer at `sensitivity`."""
    return sensitivity / max(tests, 1)
