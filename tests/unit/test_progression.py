"""The step walk of the canary analysis, on a fake target and a fake clock (orchestration only:
the real target and source are exercised by the integration tests)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlcicd.config import parse_config
from mlcicd.delivery import progression
from mlcicd.delivery.metrics.base import MeasurementError, Snapshot
from mlcicd.delivery.progression import CHECKPOINT_TAG, DECISION_TAG, CanaryAnalysis, resume_step
from mlcicd.delivery.targets.base import Backend, Release, RouterConflict, TargetState


@dataclass
class FakeTarget:
    """Two backends and a weight; records every traffic change."""

    canary_weight: int = 10
    stable_up: bool = True
    canary_up: bool = True
    weights: list[int] = field(default_factory=list)
    name: str = "fake"
    drift: str | None = None  # set by a test: somebody else changed the split

    def state(self) -> TargetState:
        stable = Backend("stable", Release("m", "1", "models:/m/1"), "http://s", self.stable_up)
        canary = Backend("canary", Release("m", "2", "models:/m/2"), "http://c", self.canary_up)
        return TargetState("http://router", stable, canary, self.canary_weight, drift=self.drift)

    def set_canary_weight(self, percent: int) -> None:
        if self.drift and percent:
            raise RouterConflict(f"{self.drift}. Not overwriting a split somebody else set")
        self.canary_weight = percent
        self.weights.append(percent)


@dataclass
class TrafficSource:
    """Serves ``rate`` req/s split by the target's weight; ``canary_error_rate`` of the canary's fail."""

    target: FakeTarget
    clock: Any
    rate: float = 200.0
    canary_error_rate: float = 0.0
    down: bool = False
    totals: dict[str, list[float]] = field(default_factory=lambda: {"stable": [0.0, 0.0], "canary": [0.0, 0.0]})
    last: float = 0.0
    name: str = "fake"

    def _advance(self) -> None:
        dt, self.last = self.clock.now - self.last, self.clock.now
        w = self.target.canary_weight / 100
        for slot, share, err in (("canary", w, self.canary_error_rate), ("stable", 1 - w, 0.0)):
            n = self.rate * dt * share
            self.totals[slot][0] += n * (1 - err)
            self.totals[slot][1] += n * err

    def read(self, backend: Backend) -> Snapshot:
        if self.down:
            raise MeasurementError("source down")
        self._advance()
        ok, bad = (round(x) for x in self.totals[backend.slot])
        n = ok + bad
        # Every request answered in 5-10 ms; predictions 70/30.
        buckets = {0.005: 0.0, 0.01: float(n), float("inf"): float(n)}
        return Snapshot({"200": float(ok), "500": float(bad)}, buckets, {"0": round(n * 0.7), "1": n - round(n * 0.7)})

    def value(self, query: str, backend: Backend) -> float:
        return 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeRegistry:
    def __init__(self, tags: dict[str, str] | None = None) -> None:
        self.tags = dict(tags or {})

    def version(self, version: str) -> Any:
        return type("MV", (), {"tags": self.tags})()

    def set_tags(self, version: str, tags: dict[str, Any]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})


def _policy(**canary: Any) -> Any:
    raw = {"steps": [10, 50], "min_requests": 100, "interval": 5, "duration": 600,
           "checks": {"error_rate": {"margin": 0.02}, "latency": {"mode": "observe"},
                      "predictions": {"mode": "observe"}}, **canary}
    cfg = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}, "deploy": {"canary": raw}})
    return cfg.deploy.canary


def _analysis(target: FakeTarget, source_kw: dict[str, Any] | None = None, registry: FakeRegistry | None = None,
              stop_after: int | None = None, interrupt: threading.Event | None = None,
              **policy: Any) -> tuple[CanaryAnalysis, TrafficSource, list[str]]:
    clock = Clock()
    source = TrafficSource(target, clock, last=clock.now, **(source_kw or {}))
    log: list[str] = []
    sleeps = [0]

    def sleep(seconds: float) -> None:
        sleeps[0] += 1
        clock.sleep(seconds)

    def stopped() -> str | None:  # a CI cancellation arriving during the n-th sleep (or setting ``interrupt``)
        during_sleep = stop_after is not None and sleeps[0] >= stop_after
        return "SIGTERM" if during_sleep or (interrupt is not None and interrupt.is_set()) else None

    analysis = CanaryAnalysis(target, source, _policy(**policy), registry or FakeRegistry(),  # type: ignore[arg-type]
                              log=log.append, clock=clock, sleep=sleep, stopped=stopped, interrupt=interrupt)
    return analysis, source, log


@pytest.mark.parametrize(("weight", "step"), [(0, 0), (5, 0), (10, 0), (30, 0), (50, 1), (100, 1)])
def test_resume_step_follows_the_actual_weight(weight, step):
    assert resume_step([10, 50], weight) == step


def test_a_healthy_canary_walks_every_step_then_is_promote_ready():
    target = FakeTarget()
    analysis, _, log = _analysis(target)
    result = analysis.run(target.state())
    assert result.decision == "promote"
    assert [s.weight for s in result.steps] == [10, 50] and target.weights == [10, 50]
    assert all(s.canary_requests >= 100 for s in result.steps)
    assert target.canary_weight == 50  # the promote stage moves the rest
    assert any("step 2/2: canary at 50%" in line for line in log)
    # Progress toward what the bake plan says each step needs, at every look.
    progress = [line for line in log if "| progress:" in line]
    assert progress and all("canary requests" in line for line in progress)
    assert result.plan is not None and result.plan.rps == pytest.approx(200, rel=0.05)
    # The report's timeline: per look, both servers' latency quantiles (the policy's) of that interval.
    first = result.timeline[0]
    assert first["canary_requests"] > 0 and set(first["canary_latency_ms"]) == set(first["stable_latency_ms"])
    assert set(first["canary_latency_ms"]) == {f"p{100 * q:g}" for q in analysis.policy.checks.latency.quantiles}
    assert all(e["canary_latency_ms"] and e["stable_latency_ms"] for e in result.timeline)


def test_after_the_last_step_the_monitor_keeps_looking_before_it_is_promote_ready():
    target = FakeTarget()
    analysis, _, log = _analysis(target, last_look=60)
    result = analysis.run(target.state())
    assert result.decision == "promote"
    began = next(i for i, line in enumerate(log) if line.startswith("last look:"))
    assert "watching 60 s more" in log[began]
    assert sum(1 for lk in result.looks if lk.last_look) == 60 / 5  # a look every 5 s for 60 s
    assert result.looks[-1].elapsed - next(lk.elapsed for lk in result.looks if lk.last_look) >= 55


def test_a_regression_in_the_last_look_is_rolled_back():
    target = FakeTarget()
    analysis, source, _ = _analysis(target, last_look=120)
    real_read = source.read

    def read(backend: Backend) -> Snapshot:
        if any(lk.last_look for lk in analysis_looks):  # the canary turns bad once the last look began
            source.canary_error_rate = 0.1
        return real_read(backend)

    analysis_looks: list[Any] = []
    source.read = read  # type: ignore[method-assign]
    original_judge = progression.judge

    def spy(looks: Any, *args: Any, **kw: Any) -> Any:
        analysis_looks[:] = looks
        return original_judge(looks, *args, **kw)

    progression.judge = spy  # type: ignore[assignment]
    try:
        result = analysis.run(target.state())
    finally:
        progression.judge = original_judge  # type: ignore[assignment]
    assert result.decision == "rollback" and result.looks[-1].last_look
    assert target.weights[-1] == 0


@pytest.mark.parametrize("stop_after", [1, 4, 12])
def test_a_cancelled_walk_stops_at_once_and_leaves_traffic_where_it_is(stop_after):
    target = FakeTarget()
    registry = FakeRegistry()
    analysis, _, log = _analysis(target, registry=registry, stop_after=stop_after)
    result = analysis.run(target.state())
    assert result.cancelled == "SIGTERM"
    assert 0 not in target.weights  # never taken out of (or put back into) traffic by the cancellation
    assert result.weight == target.canary_weight == target.weights[-1]
    assert result.steps[-1].outcome == "cancelled"
    assert DECISION_TAG not in registry.tags and CHECKPOINT_TAG in registry.tags  # a re-run resumes
    assert len(result.looks) == stop_after - 1
    assert any("stopping the analysis; traffic stays at" in line for line in log)


def test_a_cancellation_during_a_hung_metric_read_stops_the_walk_at_once_on_the_looks_that_completed():
    """A slow source (CloudWatch, a stalled /metrics page) blocks a read for its whole timeout: the walk must
    not wait for it once CI cancels the job."""
    target = FakeTarget()
    interrupt, release = threading.Event(), threading.Event()
    analysis, source, log = _analysis(target, interrupt=interrupt, min_requests=10_000)  # one long step
    real_read = source.read
    reads: list[str] = []

    def read(backend: Backend) -> Snapshot:
        reads.append(backend.slot)
        if len(reads) == 2 + 2 * 3 + 1:  # the baselines, three looks of two reads, then the 4th look's canary
            threading.Timer(0.2, interrupt.set).start()  # SIGTERM arrives while this read hangs...
            release.wait(30)  # ...for up to 30 s
        return real_read(backend)

    source.read = read  # type: ignore[method-assign]
    started = time.monotonic()
    try:
        result = analysis.run(target.state())
        took = time.monotonic() - started
    finally:
        release.set()
    assert took < 2.0
    assert result.cancelled == "SIGTERM" and result.steps[-1].outcome == "cancelled"
    assert len(result.looks) == len(result.timeline) == 3  # the look cut short is dropped
    assert result.judgement.metrics and result.judgement.decision == "continue"  # the evidence of those looks
    assert target.weights == [10] and result.weight == target.canary_weight == 10  # traffic left where it was
    assert any("stopping the analysis; traffic stays at 10%" in line for line in log)


def test_blue_green_watches_the_whole_window_at_all_traffic_then_is_promote_ready():
    target = FakeTarget(canary_weight=100)
    analysis, _, _ = _analysis(target, duration=120)
    analysis.blue_green = True
    result = analysis.run(target.state())
    assert result.decision == "promote" and [s.weight for s in result.steps] == [100]
    assert result.elapsed >= 120  # not promote-ready before the old version's warm window ends
    assert set(target.weights) == {100}


def test_blue_green_switches_back_to_the_warm_version_on_a_regression():
    target = FakeTarget(canary_weight=100)
    analysis, _, _ = _analysis(target, {"canary_error_rate": 0.2}, duration=120)
    analysis.blue_green = True
    result = analysis.run(target.state())
    assert result.decision == "rollback" and result.elapsed < 120
    assert target.weights[-1] == 0  # all traffic back on the old version at once


def test_a_bad_canary_is_taken_out_of_traffic_at_once():
    target = FakeTarget()
    registry = FakeRegistry()
    analysis, _, _ = _analysis(target, {"canary_error_rate": 0.2}, registry)
    result = analysis.run(target.state())
    assert result.decision == "rollback"
    assert target.weights[-1] == 0 and result.traffic_off_seconds is not None
    assert len(result.steps) == 1  # it never reached the second step
    assert json.loads(registry.tags[DECISION_TAG])["decision"] == "rollback"


def test_a_step_that_runs_out_of_time_is_inconclusive():
    target = FakeTarget()
    analysis, _, _ = _analysis(target, {"rate": 10.0}, step_duration=20, min_requests=500)
    result = analysis.run(target.state())
    assert result.decision == "inconclusive"
    assert "step 1 (10%)" in result.judgement.reason or "requests" in result.judgement.reason


def test_a_dead_canary_rolls_back_and_a_dead_source_is_inconclusive():
    target = FakeTarget(canary_up=False)
    analysis, _, _ = _analysis(target)
    assert analysis.run(target.state()).decision == "rollback"

    target = FakeTarget()
    analysis, _, _ = _analysis(target, {"down": True})
    result = analysis.run(target.state())
    assert result.decision == "inconclusive"


def test_a_rerun_resumes_at_the_step_traffic_is_at_with_the_time_already_spent():
    target = FakeTarget(canary_weight=50)
    started = 1_000.0 - 100  # the first run began 100 s before this one
    registry = FakeRegistry({CHECKPOINT_TAG: json.dumps({"started_at": started, "step": 1, "weight": 50,
                                                         "backend": "http://c"})})
    analysis, _, log = _analysis(target, registry=registry)
    result = analysis.run(target.state())
    assert result.decision == "promote" and result.resumed_at_step == 1
    assert [s.weight for s in result.steps] == [50]
    assert result.steps[0].started >= 100
    assert "resuming the analysis of v2 at step 2 (50%), 100 s after it began" in log


def test_a_checkpoint_of_another_canary_server_is_ignored():
    target = FakeTarget(canary_weight=50)
    registry = FakeRegistry({CHECKPOINT_TAG: json.dumps({"started_at": 1.0, "step": 1, "backend": "http://old"})})
    analysis, _, _ = _analysis(target, registry=registry)
    result = analysis.run(target.state())
    assert result.resumed_at_step is None and [s.weight for s in result.steps] == [10, 50]


def test_a_canary_already_out_of_traffic_is_never_sent_traffic_again():
    target = FakeTarget(canary_weight=0)
    registry = FakeRegistry({DECISION_TAG: json.dumps({"decision": "rollback", "reason": "error rate: x3"})})
    analysis, _, _ = _analysis(target, registry=registry)
    result = analysis.run(target.state())
    assert result.decision == "rollback" and target.weights == []
    assert "it had decided: error rate: x3" in result.judgement.reason


@pytest.mark.parametrize("bad", [False, True])
def test_a_split_changed_by_somebody_else_stops_the_walk_and_is_never_overwritten(bad):
    target = FakeTarget()
    registry = FakeRegistry()
    analysis, _, log = _analysis(target, {"canary_error_rate": 0.2} if bad else None, registry)
    original = analysis.target.state

    def state_with_a_hand_edit() -> TargetState:  # from the first look on, the split was changed by hand
        if any("step 1/" in line for line in log):
            target.drift = "the listener's forward action reads 50/50, but ml-cicd last set 90/10"
        return original()

    analysis.target.state = state_with_a_hand_edit  # type: ignore[method-assign]
    result = analysis.run(target.state())
    assert result.decision == "inconclusive" and result.router_changed is not None
    assert "somebody else changed the router's split" in result.judgement.reason
    assert "50/50" in result.judgement.reason and "rollback stage" in result.judgement.reason
    assert target.weights == [10]  # the first step's weight only: nothing after the change
    assert json.loads(registry.tags[DECISION_TAG])["decision"] == "inconclusive"
