"""Progressive canary analysis: walk the traffic steps, look every interval, ask the judge.

One run walks ``deploy.canary.steps`` (e.g. 5% → 25% → 50%): at each step the target
shifts traffic, then the monitor reads both backends every ``interval`` seconds and asks
the judge (:mod:`mlcicd.delivery.analysis`) about everything seen since the analysis
began. A step is passed when the judge says promote (its claims shown on the step's own
traffic) and the step itself saw ``min_requests`` canary requests. After the last step the
monitor keeps looking for ``last_look`` seconds (a regression that starts late is tested on
its own restart), then the canary is promote-ready. A rollback decision takes the canary
out of traffic at once. Each look logs the progress toward what the bake plan
(:mod:`.planner`) says the step's claims need.

Cancellation (CI sends SIGINT or SIGTERM): ``sleep`` is expected to return early and
``stopped`` to name the signal; the walk then stops at once, leaves traffic where it is
and returns what it has, so the stage can report how to resume or roll back. Given the
``interrupt`` event (set with the signal), the walk does not wait for a read in progress
either: a look cut short is dropped and the judgement stands on the looks that completed.

Resumable: the step comes from the target's actual canary weight, and the time budget from
a checkpoint kept on the canary's model version in the registry, so a monitor re-run after
its runner died continues where traffic is instead of starting over. (The evidence itself
restarts with the new process: counts from before the crash are not replayed.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mlcicd.config import CanaryPolicy
from mlcicd.delivery import planner
from mlcicd.delivery.analysis import Judgement, Look, MetricResult, judge
from mlcicd.delivery.cancel import Cancelled, unless_cancelled
from mlcicd.delivery.histograms import histogram_total
from mlcicd.delivery.metrics.base import MeasurementError, MetricSource, Snapshot
from mlcicd.delivery.targets.base import Backend, RouterConflict, Target, TargetState
from mlcicd.delivery.timeline import entry as timeline_entry
from mlcicd.registry import Registry

CHECKPOINT_TAG = "mlci.canary.analysis"
DECISION_TAG = "mlci.canary.decision"


@dataclass
class StepRecord:
    index: int
    weight: int
    started: float  # seconds since the analysis started
    ended: float | None = None
    canary_requests: float = 0.0
    outcome: str = "running"


@dataclass
class Analysis:
    judgement: Judgement
    steps: list[StepRecord]
    looks: list[Look]
    elapsed: float
    resumed_at_step: int | None = None
    # Seconds from the rollback decision until the router sent nothing more to the canary.
    traffic_off_seconds: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    plan: planner.Plan | None = None  # what the current step's claims need, at the traffic seen
    cancelled: str | None = None  # the signal that stopped the walk (traffic left where it was)
    weight: int | None = None  # the canary's weight when the walk ended
    # Why the walk stopped because somebody else changed the router's split (never overwritten).
    router_changed: str | None = None

    @property
    def decision(self) -> str:
        """promote, rollback or inconclusive: the last judgement's."""
        return self.judgement.decision


def resume_step(weights: list[int], current: int) -> int:
    """The step a (re-)started analysis continues at, from the target's actual canary weight."""
    at_or_below = [i for i, w in enumerate(weights) if w <= current]
    return at_or_below[-1] if at_or_below else 0


class Reader:
    """Counts since the analysis began, per backend; ``None`` for a read that failed.

    Raises :class:`Cancelled` when ``interrupt`` is set before a read returns (the read is abandoned).
    """

    def __init__(self, source: MetricSource, log: Callable[[str], None],
                 interrupt: threading.Event | None = None) -> None:
        self.source = source
        self.log = log
        self.interrupt = interrupt
        self.baseline: dict[str, Snapshot] = {}
        self.failing: set[str] = set()  # backends whose last read failed (each streak is logged once)

    def since_start(self, backend: Backend | None) -> Snapshot | None:
        # A server the target reports down is unreadable, whatever a source such as Prometheus
        # still holds for it (it keeps a dead target's last values for minutes).
        if backend is None:
            return None
        key = self._key(backend)
        try:
            if not backend.healthy:
                raise MeasurementError(f"{backend.slot} v{backend.release.version} at {backend.url} is not healthy")
            now = unless_cancelled(partial(self.source.read, backend), self.interrupt)
        except MeasurementError as exc:
            if key not in self.failing:
                self.log(f"warning: {exc}")
            self.failing.add(key)
            return None
        self.failing.discard(key)
        # The first successful read is the baseline: traffic a server saw before it never counts.
        start = self.baseline.setdefault(key, now)
        return now.minus(start)

    def before_start(self, backend: Backend | None) -> Snapshot | None:
        """What the server had served before the analysis began (its counters at the baseline)."""
        return None if backend is None else self.baseline.get(self._key(backend))

    @staticmethod
    def _key(backend: Backend) -> str:
        return f"{backend.slot}:{backend.release.version}"


class CanaryAnalysis:
    def __init__(self, target: Target, source: MetricSource, policy: CanaryPolicy, registry: Registry, *,
                 log: Callable[[str], None], clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] = time.sleep,
                 stopped: Callable[[], str | None] = lambda: None, blue_green: bool = False,
                 duration_key: str = "deploy.canary.duration", interrupt: threading.Event | None = None) -> None:
        self.target = target
        self.duration_key = duration_key  # where the user sets the bake's length (named in the plan's advice)
        # Blue-green: the new version already has all traffic and the old one waits warm; judge the new
        # one on absolute limits for the whole window (no second version to compare with), and switch
        # back at once on a regression.
        self.blue_green = blue_green
        self.source = source
        self.policy = policy
        self.registry = registry
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.stopped = stopped
        # Set with the signal ``stopped`` names: reads in progress are abandoned rather than waited for
        # (a slow source's read lasts up to its timeout, beyond the 2 s a cancelled CI job may take).
        self.interrupt = interrupt
        self.reader = Reader(source, log, interrupt)

    # -- the registry checkpoint (best effort: the analysis never depends on the registry) --
    def _version_tags(self, version: str) -> dict[str, str]:
        try:
            return dict(self.registry.version(version).tags)
        except Exception as exc:  # best effort: a registry outage must not stop the analysis
            self.log(f"warning: could not read the analysis checkpoint of v{version}: {exc}")
            return {}

    @staticmethod
    def _json_tag(tags: dict[str, str], key: str) -> dict[str, Any]:
        try:
            return dict(json.loads(tags.get(key) or "{}"))
        except ValueError:
            return {}

    def _tag(self, version: str, tags: dict[str, Any]) -> None:
        try:
            self.registry.set_tags(version, tags)
        except Exception as exc:  # a registry outage must not stop the analysis
            self.log(f"warning: could not record {sorted(tags)} on v{version}: {exc}")

    # -- the walk ---------------------------------------------------------------------------
    def run(self, state: TargetState) -> Analysis:
        assert state.canary is not None
        version = state.canary.release.version
        first_release = state.stable is None
        absolute = first_release or self.blue_green  # judged alone, on the absolute limits
        weights = [100] if absolute else self.policy.weights()
        tags = self._version_tags(version)
        checkpoint = self._json_tag(tags, CHECKPOINT_TAG)
        if checkpoint.get("backend") != state.canary.url:
            checkpoint = {}  # another canary server's: this one is a fresh deploy
        now = self.clock()
        started_at = float(checkpoint["started_at"]) if checkpoint.get("started_at") else now
        resumed = None
        if not first_release and state.canary_weight == 0:
            earlier = self._json_tag(tags, DECISION_TAG).get("reason")
            return self._out_of_traffic(state, checkpoint, earlier, now - started_at)
        index = 0
        if checkpoint and not first_release:
            index = resume_step(weights, state.canary_weight)
            resumed = index
            self.log(f"resuming the analysis of v{version} at step {index + 1} ({weights[index]}%), "
                     f"{now - started_at:.0f} s after it began")
        looks: list[Look] = []
        steps: list[StepRecord] = []
        timeline: list[dict[str, Any]] = []
        judgement: Judgement | None = None
        # Baselines now, so the first interval's traffic counts too.
        try:
            self.reader.since_start(state.canary)
            self.reader.since_start(state.stable)
        except Cancelled:
            pass  # the first sleep returns at once and the walk stops before its first look
        reference = self.reader.before_start(state.stable)
        served = 0.0  # canary requests since the analysis began, at the latest successful read
        walk = _Walk(self, weights, absolute, reference)
        elapsed = self.clock() - started_at
        changed: str | None = None  # the router's split was changed by somebody else
        while True:
            weight = weights[index]
            if not first_release:
                try:
                    self.target.set_canary_weight(weight)
                except RouterConflict as exc:
                    changed = str(exc)
                    break
            elapsed = self.clock() - started_at  # includes time spent before a crash
            step = StepRecord(index, weight, elapsed)
            steps.append(step)
            self._tag(version, {CHECKPOINT_TAG: json.dumps({"started_at": started_at, "step": index,
                                                            "weight": weight, "backend": state.canary.url})})
            self.log(f"step {index + 1}/{len(weights)}: canary at {weight}%")
            step_base = served
            last_look_at: float | None = None  # elapsed time when the last look began
            while True:
                self.sleep(self.policy.interval)
                if self.stopped():
                    break
                elapsed = self.clock() - started_at  # includes time spent before a crash
                try:  # every read of this look, abandoned when cancelled (all of them only read)
                    current = unless_cancelled(self.target.state, self.interrupt)
                    if current.drift:
                        changed = current.drift
                        break
                    canary = self.reader.since_start(current.canary)
                    stable = None if absolute else self.reader.since_start(current.stable)
                    custom = self._custom(current.canary)
                except Cancelled:
                    break  # this look is dropped: the last judgement stands on the looks that completed
                look = Look(elapsed=elapsed, canary=canary, stable=stable, canary_weight=weight,
                            custom=custom, step=index, last_look=last_look_at is not None)
                looks.append(look)
                if canary is not None:
                    served = canary.total
                    step.canary_requests = served - step_base
                limit = self.policy.step_duration
                final = elapsed >= self.policy.duration or (limit is not None and elapsed - step.started >= limit)
                judgement = judge(looks, self.policy, first_release=absolute, final=final,
                                  reference=reference)
                timeline.append(timeline_entry(looks, judgement, index, self.policy.checks.latency.quantiles))
                self.log(_log_line(look, judgement, step) + walk.progress(looks, step, last_look_at))
                if judgement.decision == "promote" and step.canary_requests < self.policy.min_requests:
                    if not final:
                        continue
                    judgement = Judgement("inconclusive", f"step {index + 1} ({weight}%) saw only "
                                          f"{step.canary_requests:.0f} of {self.policy.min_requests} canary "
                                          "requests before its time was up", judgement.metrics)
                if judgement.decision == "promote" and self.blue_green and not final:
                    continue  # the old version stays warm for the whole window: keep watching
                if judgement.decision == "promote" and index + 1 == len(weights) and not final:
                    if last_look_at is None and self.policy.last_look > 0:
                        last_look_at = elapsed
                        self.log(f"last look: the last step shows promote; watching {self.policy.last_look:g} s "
                                 "more for a regression that starts late")
                        continue
                    if last_look_at is not None and elapsed - last_look_at < self.policy.last_look:
                        continue
                if judgement.decision != "continue":
                    break
            step.ended = elapsed
            if self.stopped():
                step.outcome = "cancelled"
                break
            if changed is not None:
                step.outcome = "router changed"
                break
            assert judgement is not None
            step.outcome = judgement.decision
            if judgement.decision == "promote" and index + 1 < len(weights):
                index += 1
                continue
            break
        if changed is not None:
            judgement = Judgement("inconclusive", _router_changed(changed, weights[index]),
                                  judgement.metrics if judgement is not None else ())
        if judgement is None:
            judgement = Judgement("inconclusive", "cancelled before the first look", ())
        analysis = Analysis(judgement, steps, looks, elapsed, resumed, timeline=timeline, plan=walk.plan,
                            cancelled=self.stopped(), weight=weights[index], router_changed=changed)
        if analysis.cancelled:
            self.log(f"{analysis.cancelled}: stopping the analysis; traffic stays at {weights[index]}%")
            return analysis  # traffic stays where it is; the checkpoint lets a re-run resume
        if judgement.decision == "rollback" and not first_release and changed is None:
            # Protect users now; the rollback stage stops the canary and records why.
            off = self.clock()
            self.target.set_canary_weight(0)
            analysis.traffic_off_seconds = round(self.clock() - off, 3)
            analysis.weight = 0
        self._tag(version, {DECISION_TAG: json.dumps({"decision": judgement.decision,
                                                      "reason": judgement.reason})})
        return analysis

    def _custom(self, canary: Backend | None) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for check in self.policy.checks.custom:
            try:
                values[check.name] = None if canary is None else \
                    unless_cancelled(partial(self.source.value, check.query, canary), self.interrupt)
            except MeasurementError as exc:
                self.log(f"custom check {check.name}: {exc}")
                values[check.name] = None
        return values

    @staticmethod
    def _out_of_traffic(state: TargetState, checkpoint: dict[str, Any], earlier: str | None,
                        elapsed: float) -> Analysis:
        """A canary at 0% was taken out by an earlier analysis (or by hand): never send it traffic again."""
        assert state.canary is not None
        reason = (f"canary v{state.canary.release.version} receives no traffic: an earlier analysis took it out "
                  "of traffic (re-run deploy-canary to try it again)")
        if earlier:
            reason += f"; it had decided: {earlier}"
        result = MetricResult("canary_traffic", "rollback", reason, {"canary_weight": 0, **checkpoint},
                              critical=True)
        return Analysis(Judgement("rollback", reason, (result,)), [], [], elapsed)


class _Walk:
    """The bake plan for the step being walked, refreshed from the traffic seen, and progress toward it."""

    def __init__(self, owner: CanaryAnalysis, weights: list[int], first_release: bool,
                 reference: Snapshot | None) -> None:
        self.owner, self.weights, self.first_release, self.reference = owner, weights, first_release, reference
        self.plan: planner.Plan | None = None
        self.planned_step: int | None = None

    def _observed(self, looks: list[Look]) -> planner.Observed:
        seen = [lk for lk in looks if lk.canary is not None and (lk.stable is not None or self.first_release)]
        if not seen:
            return planner.Observed()
        last = seen[-1]
        stable = last.stable if last.stable is not None else last.canary
        assert last.canary is not None and stable is not None
        total = last.canary.total + (last.stable.total if last.stable is not None else 0.0)
        elapsed = max(last.elapsed - (looks[0].elapsed - self.owner.policy.interval), 1e-9)
        ref = self.reference
        lat = ref.latency_buckets if ref is not None and histogram_total(ref.latency_buckets) > 0 \
            else stable.latency_buckets
        mix = ref.predictions if ref is not None and sum(ref.predictions.values()) > 0 else stable.predictions
        # The stable's 5xx rate: its history before the analysis and what it served since.
        errors = stable.errors + (ref.errors if ref is not None else 0.0)
        requests = stable.total + (ref.total if ref is not None else 0.0)
        return planner.Observed(rps=total / elapsed, error_rate=errors / requests if requests else None,
                                latency=lat, mix=mix)

    def progress(self, looks: list[Look], step: StepRecord, last_look_at: float | None) -> str:
        """" | progress: ..." for the log line: the step's canary requests against what its claims need."""
        if self.planned_step != step.index:  # plan once per step, from the traffic seen so far
            seen = self._observed(looks)
            if seen.rps:
                bounds = tuple(sorted(seen.latency)) if seen.latency else ()
                self.plan = planner.plan(self.owner.policy, seen, first_release=self.first_release, bounds=bounds)
                self.planned_step = step.index
                advice = self.plan.advice(self.owner.policy.duration, self.owner.duration_key)
                self.owner.log(f"warning: {advice}" if advice else f"bake plan: {self.plan.summary()}")
        if self.plan is None or last_look_at is not None:
            return ""
        need = self.plan.step_requests[step.index]
        binding = self.plan.binding(step.index)
        rate = step.canary_requests / max(looks[-1].elapsed - step.started, 1e-9)
        left = max(need - step.canary_requests, 0.0)
        eta = f", ~{left / rate:,.0f} s to go at {rate:,.1f} canary req/s" if rate > 0 and left > 0 else ""
        what = f" ({binding.claim})" if binding is not None else ""
        return f" | progress: {step.canary_requests:,.0f} of ~{need:,.0f} canary requests{what}{eta}"


def _router_changed(drift: str, weight: int) -> str:
    return (f"the analysis stopped: somebody else changed the router's split while the canary was at {weight}% "
            f"({drift}). ml-cicd does not overwrite it: decide which version should serve, then run the rollback "
            "stage (it only takes the canary out of traffic) or restore the split and re-run monitor-canary")


def _log_line(look: Look, judgement: Judgement, step: StepRecord) -> str:
    canary = "canary unreadable" if look.canary is None else \
        f"canary {look.canary.total:.0f} req / {look.canary.errors:.0f} 5xx"
    stable = "" if look.stable is None else f" | stable {look.stable.total:.0f} req / {look.stable.errors:.0f} 5xx"
    return (f"[{look.elapsed:5.1f}s] step {step.index + 1} ({step.weight}%) {canary}{stable} "
            f"-> {judgement.decision}: {judgement.reason}")
