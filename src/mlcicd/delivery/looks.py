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

import math
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


class _Growing:
    """A 1-D float array appended to one value at a time (amortised doubling); ``view`` is its filled part."""

    def __init__(self, values: Sequence[float] = ()) -> None:
        self.data = np.array(values, dtype=float) if len(values) else np.zeros(16)
        self.n = len(values)

    def append(self, value: float) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.zeros(max(len(self.data), 16))])
        self.data[self.n] = value
        self.n += 1

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class Reads:
    """One server's successful reads so far, with what every judgement needs from them computed once.

    The monitor asks the judge after every look about the whole history; keeping the reads
    here (appended to, never rebuilt) makes each judgement cost a few array operations
    instead of re-reading every snapshot.
    """

    def __init__(self) -> None:
        self.index: list[int] = []
        self.snaps: list[Snapshot] = []
        self.base = [_Growing() for _ in range(3)]  # requests, 5xx, histogram total
        self.labels: dict[str, _Growing] = {}
        self.columns: dict[float, _Growing] = {}

    def add(self, i: int, snap: Snapshot) -> None:
        self.index.append(i)
        self.snaps.append(snap)
        for column, value in zip(self.base, (snap.total, snap.errors, hg.histogram_total(snap.latency_buckets)),
                                 strict=True):
            column.append(value)
        for key, values in self.labels.items():
            values.append(snap.predictions.get(key, 0.0))
        for key in snap.predictions:
            if key not in self.labels:
                self.labels[key] = _Growing([s.predictions.get(key, 0.0) for s in self.snaps])
        for bound, values in self.columns.items():
            values.append(hg.bucket_count(snap.latency_buckets, bound))

    def label(self, key: str) -> np.ndarray:
        found = self.labels.get(key)
        return found.view if found is not None else np.zeros(len(self.snaps))

    def column(self, bound: float) -> np.ndarray:
        if bound not in self.columns:
            self.columns[bound] = _Growing([hg.bucket_count(s.latency_buckets, bound) for s in self.snaps])
        return self.columns[bound].view


class Counters:
    """One server's counters at the looks it was read, cumulative with restarts undone.

    ``cum`` has requests, 5xx, the histogram's total and the label counts per read. Buckets
    are read on demand (the tests need few of them).
    """

    def __init__(self, reads: Reads, labels: tuple[str, ...]):
        self.reads = reads
        self.index = np.array(reads.index, dtype=int)
        self.snaps = reads.snaps
        raw = np.column_stack([c.view for c in reads.base] + [reads.label(k) for k in labels])
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
        return self._undo_resets(self.reads.column(bound))

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
    steps: np.ndarray  # each look's step
    last_look: np.ndarray  # each look: part of the last look?

    @classmethod
    def of(cls, looks: Sequence[Look], first_release: bool) -> History:
        reads_c, reads_s, steps, last_look = _reads(looks, first_release)
        # A server keeps its bucket bounds; new labels can appear at any time.
        bounds = tuple(sorted(set().union(*(r.snaps[-1].latency_buckets for r in (reads_c, reads_s) if r.snaps))))
        labels = tuple(sorted(set(reads_c.labels) | set(reads_s.labels)))
        canary, stable = Counters(reads_c, labels), Counters(reads_s, labels)
        joint = np.intersect1d(canary.index, stable.index, assume_unique=True)
        rc, rs = np.searchsorted(canary.index, joint), np.searchsorted(stable.index, joint)
        return cls(looks, bounds, labels, canary, stable, joint, rc, rs, steps, last_look)


@dataclass(eq=False)
class _Cached:
    looks: Sequence[Look]
    n: int
    last: Look | None
    first_release: bool
    canary: Reads
    stable: Reads
    steps: _Growing
    last_look: _Growing


# Reads of the looks lists judged lately: a list that only grew since is extended, not re-read.
_CACHE: list[_Cached] = []
_CACHE_SIZE = 4


def _reads(looks: Sequence[Look], first_release: bool) -> tuple[Reads, Reads, np.ndarray, np.ndarray]:
    hit = next((c for c in _CACHE if c.looks is looks and c.first_release == first_release and c.n <= len(looks)
                and (c.n == 0 or looks[c.n - 1] is c.last)), None)
    if hit is None:
        hit = _Cached(looks, 0, None, first_release, Reads(), Reads(), _Growing(), _Growing())
    else:
        _CACHE.remove(hit)
    for i in range(hit.n, len(looks)):
        lk = looks[i]
        if lk.canary is not None:
            hit.canary.add(i, lk.canary)
        if lk.stable is not None and not first_release:
            hit.stable.add(i, lk.stable)
        hit.steps.append(lk.step)
        hit.last_look.append(lk.last_look)
    hit.n, hit.last = len(looks), (looks[-1] if looks else None)
    _CACHE.insert(0, hit)
    del _CACHE[_CACHE_SIZE:]
    return hit.canary, hit.stable, hit.steps.view.astype(int), hit.last_look.view.astype(bool)


# Prior weights of the restarts: the analysis's own start (a bad model is usually bad from its first
# request) and the last look (a late regression has only its window to be seen in); the later steps
# share the rest evenly.
FIRST_SEGMENT_WEIGHT = 0.5
LAST_LOOK_WEIGHT = 0.25


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
    def of(cls, steps: np.ndarray, last_look: np.ndarray, n_steps: int) -> Segments:
        """From each look's step and last-look flag."""
        keys = np.where(last_look, n_steps, steps)
        if len(keys):
            keys = np.where(keys == keys[0], 0, keys)  # the step the analysis began at is its start
        found, first = np.unique(keys, return_index=True)
        return cls(n_steps, dict(zip(found.tolist(), first.tolist(), strict=True)))

    def weight(self, key: int) -> float:
        """Prior weight of restart ``key``; all of them sum to one."""
        if key == 0:
            return FIRST_SEGMENT_WEIGHT
        if self.n_steps <= 1:  # no later step: the last look has all the rest
            return 1.0 - FIRST_SEGMENT_WEIGHT if key == self.n_steps else 0.0
        if key == self.n_steps:
            return LAST_LOOK_WEIGHT
        return (1.0 - FIRST_SEGMENT_WEIGHT - LAST_LOOK_WEIGHT) / (self.n_steps - 1)

    def log_weight(self, key: int) -> float:
        return math.log(self.weight(key))

    def unstarted_log_weight(self) -> float:
        """Prior weight of the restarts that have not happened: their e-values are still 1."""
        missing = sum(self.weight(k) for k in range(1, self.n_steps + 1) if k not in self.first)
        return math.log(missing) if missing > 0 else -math.inf

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
