"""The history of a canary analysis as arrays: what the judge computes its tests on.

A :class:`Look` is one read of both servers; :class:`History` turns the list of looks into
per-server matrices of cumulative counts (requests, 5xx, histogram total, predicted labels),
with counter resets of restarted servers undone and the looks where both sides were read
lined up, so every test in :mod:`.analysis` is a few vectorised numpy operations.

Segments: every rollback test also restarts where a step begins and where the last look
begins, so a regression that starts late is not diluted by the healthy evidence before
it. :class:`Segments` holds the restarts and their prior weights; the combined e-value
``sum_k w_k E_k`` (``E_k = 1`` before segment k starts) is a supermartingale because
each term is one from a stopping time on (see :mod:`.analysis`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlcicd.delivery import histograms as hg
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
    step: int = 0  # index of the traffic step (in the policy's weights) the interval ending here belongs to
    last_look: bool = False  # after the last step showed promote: watching for a late regression


class Reads:
    """One server's successful reads so far, with what every judgement needs from them computed once.

    The monitor asks the judge after every look about the whole history; keeping the reads
    here (appended to, never rebuilt) makes each judgement cost a few array operations
    instead of re-reading every snapshot.
    """

    def __init__(self) -> None:
        self.index: list[int] = []
        self.snaps: list[Snapshot] = []
        self.base: list[tuple[float, float, float]] = []  # requests, 5xx, histogram total
        self.labels: dict[str, list[float]] = {}
        self.columns: dict[float, list[float]] = {}

    def add(self, i: int, snap: Snapshot) -> None:
        self.index.append(i)
        self.snaps.append(snap)
        self.base.append((snap.total, snap.errors, hg.histogram_total(snap.latency_buckets)))
        for key, values in self.labels.items():
            values.append(snap.predictions.get(key, 0.0))
        for key in snap.predictions:
            if key not in self.labels:
                self.labels[key] = [s.predictions.get(key, 0.0) for s in self.snaps]
        for bound, values in self.columns.items():
            values.append(hg.bucket_count(snap.latency_buckets, bound))

    def label(self, key: str) -> list[float]:
        return self.labels.get(key) or [0.0] * len(self.snaps)

    def column(self, bound: float) -> list[float]:
        if bound not in self.columns:
            self.columns[bound] = [hg.bucket_count(s.latency_buckets, bound) for s in self.snaps]
        return self.columns[bound]


class Counters:
    """One server's counters at the looks it was read, cumulative with restarts undone.

    ``cum`` has requests, 5xx, the histogram's total and the label counts per read. Buckets
    are read on demand (the tests need few of them).
    """

    def __init__(self, reads: Reads, labels: tuple[str, ...]):
        self.reads = reads
        self.index = np.array(reads.index, dtype=int)
        self.snaps = reads.snaps
        raw = np.array(reads.base, dtype=float).reshape(len(reads.base), 3)
        if labels:
            raw = np.hstack([raw, np.array([reads.label(k) for k in labels], dtype=float).reshape(len(labels), -1).T])
        # A restarted server's counters go down: that interval's increment is the new count.
        self.reset = np.r_[False, (np.diff(raw, axis=0) < 0).any(axis=1)] if len(raw) else np.zeros(0, bool)
        self.cum = self._undo_resets(raw)

    def _undo_resets(self, raw: np.ndarray) -> np.ndarray:
        if not self.reset.any():
            return raw
        inc = np.diff(raw, axis=0, prepend=np.zeros((1, *raw.shape[1:])))
        inc[self.reset] = raw[self.reset]
        return np.asarray(np.cumsum(inc, axis=0))

    def column(self, bound: float) -> np.ndarray:
        """Cumulative count of requests no slower than ``bound``, per read."""
        return self._undo_resets(np.array(self.reads.column(bound), dtype=float))

    def hist(self, row: int, bounds: tuple[float, ...]) -> dict[float, float]:
        """The whole cumulative histogram at one read (restarts undone)."""
        rows = [row, *(r - 1 for r in np.flatnonzero(self.reset[: row + 1]).tolist() if r > 0)]
        hists = [self.snaps[r].latency_buckets for r in rows]
        values = np.array([[hg.bucket_count(h, b) for b in bounds] for h in hists], dtype=float)
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
        reads_c, reads_s = _reads(looks, first_release)
        # A server keeps its bucket bounds; new labels can appear at any time.
        bounds = tuple(sorted(set().union(*(r.snaps[-1].latency_buckets for r in (reads_c, reads_s) if r.snaps))))
        labels = tuple(sorted(set(reads_c.labels) | set(reads_s.labels)))
        canary, stable = Counters(reads_c, labels), Counters(reads_s, labels)
        joint = np.intersect1d(canary.index, stable.index, assume_unique=True)
        rc, rs = np.searchsorted(canary.index, joint), np.searchsorted(stable.index, joint)
        return cls(looks, bounds, labels, canary, stable, joint, rc, rs)


@dataclass
class _Cached:
    looks: Sequence[Look]
    n: int
    last: Look | None
    first_release: bool
    canary: Reads
    stable: Reads


# Reads of the looks lists judged lately: a list that only grew since is extended, not re-read.
_CACHE: list[_Cached] = []
_CACHE_SIZE = 4


def _reads(looks: Sequence[Look], first_release: bool) -> tuple[Reads, Reads]:
    hit = next((c for c in _CACHE if c.looks is looks and c.first_release == first_release and c.n <= len(looks)
                and (c.n == 0 or looks[c.n - 1] is c.last)), None)
    if hit is None:
        hit = _Cached(looks, 0, None, first_release, Reads(), Reads())
    else:
        _CACHE.remove(hit)
    for i in range(hit.n, len(looks)):
        lk = looks[i]
        if lk.canary is not None:
            hit.canary.add(i, lk.canary)
        if lk.stable is not None and not first_release:
            hit.stable.add(i, lk.stable)
    hit.n, hit.last = len(looks), (looks[-1] if looks else None)
    _CACHE.insert(0, hit)
    del _CACHE[_CACHE_SIZE:]
    return hit.canary, hit.stable


# Prior weight of the analysis's own start; the rest is shared evenly by the later restarts.
FIRST_SEGMENT_WEIGHT = 0.5


@dataclass(frozen=True)
class Segments:
    """Where the rollback tests restart: the analysis start, each later step, the last look.

    ``keys`` are the possible restarts fixed by the policy before any look (0: the analysis
    start, k: step k of ``n_steps``, ``n_steps``: the last look), ``first`` the look index
    where each one that happened began.
    """

    n_steps: int
    first: dict[int, int]

    @classmethod
    def of(cls, looks: Sequence[Look], n_steps: int) -> Segments:
        first: dict[int, int] = {}
        start = looks[0].step if looks else 0
        for i, lk in enumerate(looks):
            key = n_steps if lk.last_look else lk.step
            first.setdefault(0 if key == start else key, i)
        return cls(n_steps, first)

    def log_weight(self, key: int) -> float:
        later = (1.0 - FIRST_SEGMENT_WEIGHT) / max(self.n_steps, 1)
        return float(np.log(FIRST_SEGMENT_WEIGHT if key == 0 else later))

    def unstarted_log_weight(self) -> float:
        """Prior weight of the restarts that have not happened: their e-values are still 1."""
        later = (1.0 - FIRST_SEGMENT_WEIGHT) / max(self.n_steps, 1)
        missing = sum(1 for k in range(1, self.n_steps + 1) if k not in self.first)
        return float(np.log(missing * later)) if missing else -np.inf

    def starts(self, index: np.ndarray) -> list[tuple[int, float]]:
        """(first row of ``index`` in the segment, log weight) for every segment that started.

        ``index``: the look index of each row (a server's reads, or the joint reads).
        """
        out = []
        for key, look in sorted(self.first.items()):
            row = int(np.searchsorted(index, look))
            if row < len(index):
                out.append((row, self.log_weight(key)))
        return out

    def combine(self, per_start: np.ndarray, starts: list[tuple[int, float]], rows: np.ndarray) -> np.ndarray:
        """log sum_k w_k E_k at ``rows`` from each started segment's log e-values (starts x rows).

        Before its start a segment's e-value is 1 (log 0), whatever ``per_start`` holds there.
        """
        first = np.array([row for row, _ in starts], dtype=int)[:, None]
        weights = np.array([lw for _, lw in starts])[:, None]
        parts = np.where(rows[None, :] >= first, per_start, 0.0) + weights
        rest = np.full((1, len(rows)), self.unstarted_log_weight())
        return np.asarray(seq.logsumexp(np.vstack([parts, rest]), axis=0))


def trailing(flags: np.ndarray, index: np.ndarray, n_looks: int, span: int) -> list[bool]:
    """Whether a claim stood at each of the last ``span`` looks (a failed read keeps the last verdict)."""
    pos = np.searchsorted(index, np.arange(n_looks - span, n_looks), side="right") - 1
    return [bool(p >= 0 and flags[p]) for p in pos.tolist()]
