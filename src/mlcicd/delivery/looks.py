"""The history of a canary analysis as arrays: what the judge computes its tests on.

A :class:`Look` is one read of both servers; :class:`History` turns the list of looks into
per-server matrices of cumulative counts (requests, 5xx, histogram total, predicted labels),
with counter resets of restarted servers undone and the looks where both sides were read
lined up, so every test in :mod:`.analysis` is a few vectorised numpy operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlcicd.delivery import sequential as seq
from mlcicd.delivery.metrics.base import Snapshot

# Columns of a counter matrix: requests, 5xx, histogram total; label counts from PRED on.
REQ, ERR, HTOT, PRED = 0, 1, 2, 3


@dataclass(frozen=True)
class Look:
    elapsed: float  # seconds since the analysis started
    canary: Snapshot | None  # counts since the analysis started; None: this read failed
    stable: Snapshot | None  # same for stable; None on a first release or when the read failed
    canary_weight: int  # percent of traffic the canary had during the interval ending here
    custom: Mapping[str, float | None] = field(default_factory=dict)  # custom check -> value (None: failed)


class Counters:
    """One server's counters at the looks it was read, cumulative with restarts undone.

    ``cum`` has requests, 5xx, the histogram's total and the label counts per read. Buckets
    are read on demand (the tests need few of them, and every call re-reads the history).
    """

    def __init__(self, reads: list[tuple[int, Snapshot]], labels: tuple[str, ...]):
        self.index = np.array([i for i, _ in reads], dtype=int)
        self.snaps = [s for _, s in reads]
        reqs = [s.requests for s in self.snaps]
        errors = [np.array([r.get(c, 0.0) for r in reqs]) for c in set().union(*reqs) if c.startswith("5")]
        columns = [[sum(r.values()) for r in reqs], sum(errors, np.zeros(len(reqs))),
                   [seq.histogram_total(s.latency_buckets) for s in self.snaps],
                   *([s.predictions.get(k, 0.0) for s in self.snaps] for k in labels)]
        raw = np.array(columns, dtype=float).reshape(PRED + len(labels), len(reqs)).T
        # A restarted server's counters go down: that interval's increment is the new count.
        self.reset = np.r_[False, (np.diff(raw, axis=0) < 0).any(axis=1)] if len(raw) else np.zeros(0, bool)
        self.cum = self._undo_resets(raw)

    def _undo_resets(self, raw: np.ndarray) -> np.ndarray:
        inc = np.diff(raw, axis=0, prepend=np.zeros((1, *raw.shape[1:])))
        inc[self.reset] = raw[self.reset]
        return np.asarray(np.cumsum(inc, axis=0))

    def column(self, bound: float) -> np.ndarray:
        """Cumulative count of requests no slower than ``bound``, per read."""
        values = [s.latency_buckets.get(bound) for s in self.snaps]
        if None in values:
            values = [seq.bucket_count(s.latency_buckets, bound) for s in self.snaps]
        return self._undo_resets(np.array(values, dtype=float))

    def hist(self, row: int, bounds: tuple[float, ...]) -> dict[float, float]:
        """The whole cumulative histogram at one read (restarts undone)."""
        rows = [row, *(r - 1 for r in np.flatnonzero(self.reset[: row + 1]).tolist() if r > 0)]
        hists = [self.snaps[r].latency_buckets for r in rows]
        values = np.array([[seq.bucket_count(h, b) for b in bounds] for h in hists], dtype=float)
        return dict(zip(bounds, values.sum(axis=0).tolist(), strict=True))


@dataclass
class History:
    looks: Sequence[Look]
    bounds: tuple[float, ...]
    labels: tuple[str, ...]
    canary: Counters
    stable: Counters
    joint: np.ndarray  # look indices where both sides were read
    rc: np.ndarray  # their canary rows
    rs: np.ndarray  # their stable rows

    @classmethod
    def of(cls, looks: Sequence[Look], first_release: bool) -> History:
        reads_c = [(i, lk.canary) for i, lk in enumerate(looks) if lk.canary is not None]
        reads_s = [] if first_release else [(i, lk.stable) for i, lk in enumerate(looks) if lk.stable is not None]
        # A server keeps its bucket bounds; new labels can appear at any time.
        bounds = tuple(sorted(set().union(*(r[-1][1].latency_buckets for r in (reads_c, reads_s) if r))))
        labels = tuple(sorted(set().union(*[s.predictions for _, s in reads_c + reads_s])))
        canary, stable = Counters(reads_c, labels), Counters(reads_s, labels)
        joint = np.intersect1d(canary.index, stable.index)
        rc, rs = np.searchsorted(canary.index, joint), np.searchsorted(stable.index, joint)
        return cls(looks, bounds, labels, canary, stable, joint, rc, rs)


def trailing(flags: np.ndarray, index: np.ndarray, n_looks: int, span: int) -> list[bool]:
    """Whether a claim stood at each of the last ``span`` looks (a failed read keeps the last verdict)."""
    pos = np.searchsorted(index, np.arange(n_looks - span, n_looks), side="right") - 1
    return [bool(p >= 0 and flags[p]) for p in pos.tolist()]
