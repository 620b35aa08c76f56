"""Canary judge benchmark: the anytime-valid judge against Flagger-, Kayenta- and naive-style analysis.

Simulated traffic (numpy, fixed seeds, ``canary_baselines.Traffic``): Poisson requests split
between canary and stable by the canary weight, 5xx errors as Bernoulli, latencies
log-normal (median 20 ms, sigma 0.5, p99 ~64 ms) counted into the model server's histogram
buckets, predictions from a class mix; optionally shared incidents (both versions at 10%
5xx for 90 s, about every 10 minutes) and a regression that starts at a later step or at
promote-readiness. The judge is driven exactly like the monitor-canary stage drives it
(``delivery/progression.py``): a look every ``--interval`` seconds, the steps walked in order
(a step advances on "promote" once it has ``min_requests`` canary requests of its own), then
the last look. Baselines are in ``canary_baselines.py``; Flagger is run both with its
documented settings and *calibrated* (threshold and success-rate minimum searched on
separate seeds so that healthy canaries at 100 req/s roll back at most 5%, then the fastest
to roll back a doubled error rate). Naive: one-sided 95% z-tests on cumulative counts
re-run at every look; promote when the Wald 95% bound of p_c - p_s is within the margin.

At CloudWatch granularity (the rows ``cw_*``) the metrics come in whole periods published
``delay`` late (the cloudwatch source's defaults: 60 s, 120 s): the judge looks once a period,
the shortest useful interval, and sees the counts up to the newest published period; Flagger
checks the newest published period, calibrated again on these rows (the checks that find
nothing published yet fail, so its thresholds are searched that many higher).

Usage: .venv/bin/python bench/canary_sim.py [--reps N] [--interval S] [--jobs J] [--quick] [--only KEYS]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from canary_baselines import (
    BAKE,
    BOUNDS,
    CLOUDWATCH,
    LATENCY_BUCKETS,
    STEPS,
    Granularity,
    Result,
    Scenario,
    Traffic,
    run_flagger,
    run_kayenta,
)
from canary_report import print_table, print_targets, summarise

from mlcicd.config import CanaryPolicy
from mlcicd.delivery import planner
from mlcicd.delivery.analysis import Judgement, Look, judge, quantile_from_buckets
from mlcicd.delivery.metrics.base import Snapshot

FLAGGER_DOCS = {"interval": 60.0, "threshold": 5, "success_min": 99.0, "p99_max_ms": 80.0}
KAYENTA = {"window": BAKE, "conf": 0.98, "tolerance": 0.25, "allowed_increase": 1.0, "pass": 95.0, "marginal": 75.0}
NAIVE_Z = 1.6449  # one-sided 95%
DRIFT_80 = (0.5564, 0.4436)  # JSD 0.016 bits from 70/30: 80% of the default max_divergence 0.02
# A last look that sees a late regression at CloudWatch granularity: the first period served after
# promote-readiness is published delay + period later, and a doubled error rate takes ~3 more
# periods (the cw_err_2x row). The default 120 s ends before that period is even published.
CW_LAST_LOOK = CLOUDWATCH.delay + CLOUDWATCH.period + 3 * CLOUDWATCH.period


def at_cloudwatch(sc: Scenario, methods: tuple[str, ...] = ("judge", "flagger_cal", "flagger_100", "flagger"),
                  last_look: float | None = None) -> Scenario:
    """The row as the cloudwatch source sees it, with a look once a period (more often finds nothing new)."""
    title = f"{sc.title} at CloudWatch granularity" + (f", last look {last_look:g} s" if last_look else "")
    return replace(sc, title=title, grain=CLOUDWATCH, interval=CLOUDWATCH.period, methods=methods,
                   last_look=last_look)

SCENARIOS = (
    Scenario("aa_high", "A/A 1% 5xx, 100 req/s", True),
    Scenario("aa_low", "A/A 1% 5xx, 10 req/s, planned bake", True, rate=10.0, bake="plan", interval=30.0),
    Scenario("aa_01", "A/A 0.1% 5xx", True, err_s=0.001),
    Scenario("aa_0", "A/A 0% 5xx", True, err_s=0.0),
    Scenario("incidents", "A/A 1%, shared incidents", True, incidents=True),
    Scenario("lat_05", "latency +5% (10% tolerance)", True, lat_c=1.05),
    Scenario("drift_80", "prediction drift at 80% of limit", True, mix_c=DRIFT_80),
    Scenario("err_2x", "5xx 1% -> 2%", False, err_c=0.02),
    *(Scenario(f"late_{k + 1}", f"5xx 1% -> 2% from step {k + 1}", False, err_c=0.02, onset=k)
      for k in range(1, STEPS)),
    Scenario("late_ready", "5xx 1% -> 2% at promote-ready", False, err_c=0.02, onset="ready"),
    Scenario("b01_3x", "5xx 0.1% -> 0.3%", False, err_s=0.001, err_c=0.003),
    Scenario("b01_5x", "5xx 0.1% -> 0.5%", False, err_s=0.001, err_c=0.005),
    Scenario("b0_3", "5xx 0% -> 0.3%", False, err_s=0.0, err_c=0.003),
    Scenario("b0_5", "5xx 0% -> 0.5%", False, err_s=0.0, err_c=0.005),
    Scenario("p99_50", "latency x1.5", False, lat_c=1.5),
    Scenario("lat_20", "latency +20% (10% tolerance)", False, lat_c=1.2),
    Scenario("pred_shift", "prediction mix 70/30 -> 50/50", False, mix_c=(0.5, 0.5)),
    Scenario("small_2x", "5xx 1% -> 2% at 2% weight", False, weight=2, err_c=0.02),
    at_cloudwatch(Scenario("cw_aa", "A/A healthy", True)),
    at_cloudwatch(Scenario("cw_err_2x", "5xx 1% -> 2%", False, err_c=0.02)),
    at_cloudwatch(Scenario("cw_p99_50", "latency x1.5", False, lat_c=1.5)),
    *(at_cloudwatch(Scenario(f"cw_late_{k + 1}", f"5xx 1% -> 2% from step {k + 1}", False, err_c=0.02, onset=k),
                    ("judge", "flagger_cal")) for k in range(1, STEPS)),
    at_cloudwatch(Scenario("cw_late_ready", "5xx 1% -> 2% at promote-ready", False, err_c=0.02, onset="ready"),
                  ("judge", "flagger_cal")),
    at_cloudwatch(Scenario("cw_ll_aa", "A/A healthy", True), ("judge",), CW_LAST_LOOK),
    at_cloudwatch(Scenario("cw_ll_late_5", "5xx 1% -> 2% from step 5", False, err_c=0.02, onset=STEPS - 1),
                  ("judge",), CW_LAST_LOOK),
    at_cloudwatch(Scenario("cw_ll_ready", "5xx 1% -> 2% at promote-ready", False, err_c=0.02, onset="ready"),
                  ("judge",), CW_LAST_LOOK),
)


def policy_for(sc: Scenario, interval: float, bake: float) -> CanaryPolicy:
    return CanaryPolicy(weight=sc.weight, steps=[sc.weight * k for k in range(1, STEPS + 1)], min_requests=200,
                        duration=bake, interval=interval, confidence=0.95,
                        last_look=CanaryPolicy.last_look if sc.last_look is None else sc.last_look)


def reference_for(sc: Scenario, seed: int) -> Snapshot:
    """The champion served alone for 10 minutes before the canary came: its counters are the reference."""
    history = Traffic(sc, seed + 1_000_003)
    history.advance(600.0, 0)
    return history.snapshot("stable")


def planned_bake(sc: Scenario, interval: float) -> float:
    """What deploy-canary's planner tells a user to set for this traffic (from the expected reference)."""
    if sc.bake != "plan":
        return float(sc.bake)
    ref = reference_for(sc, 0)
    seen = planner.Observed(rps=sc.rate, error_rate=sc.err_s, latency=ref.latency_buckets, mix=ref.predictions)
    rec = planner.plan(policy_for(sc, interval, BAKE), seen, bounds=BOUNDS).recommended
    return float(rec) if rec is not None else BAKE


Decide = Callable[..., Judgement]
Cal = tuple[Scenario, float]  # a row the Flagger calibration runs, and its bake


def run_monitor(decide: Decide, sc: Scenario, seed: int, interval: float, bake: float) -> Result:
    """The monitor-canary loop (delivery/progression.py): a look every interval, the whole history each time."""
    policy, tr, reference = policy_for(sc, interval, bake), Traffic(sc, seed), reference_for(sc, seed)
    weights, step, t = policy.weights(), 0, 0.0
    looks: list[Look] = []
    step_base = 0.0  # canary requests served before the current step began
    last_look_at: float | None = None
    while True:
        tr.regressed |= isinstance(sc.onset, int) and step >= sc.onset
        tr.advance(interval, weights[step])
        t += interval
        looks.append(Look(t, tr.snapshot("canary"), tr.snapshot("stable"), weights[step], step=step,
                          last_look=last_look_at is not None))
        served = float(tr.visible("canary")[0])  # what the monitor knows the canary served
        exposed = float(tr.cum["canary"][0])  # what it did serve (more, when the metrics come late)
        final = t >= bake - 1e-9
        j = decide(looks, policy, first_release=False, final=final, reference=reference)
        if j.decision == "rollback":
            return Result("rollback", t, exposed)
        if j.decision == "promote" and served - step_base >= policy.min_requests:
            if step < len(weights) - 1:
                step, step_base = step + 1, served
                continue
            if not final and last_look_at is None and policy.last_look > 0:
                last_look_at = t  # promote-ready: the last look begins
                tr.regressed |= sc.onset == "ready"
                continue
            if not final and last_look_at is not None and t - last_look_at < policy.last_look:
                continue
            return Result("promote", t, exposed)
        if final or j.decision == "inconclusive":
            return Result("none", t, exposed)


def naive_judge(looks: list[Look], policy: CanaryPolicy, *, first_release: bool, final: bool,
                reference: Snapshot | None = None) -> Judgement:
    c, s = looks[-1].canary, looks[-1].stable
    assert c is not None and s is not None

    def z_and_upper(xc: float, nc: float, xs: float, ns: float) -> tuple[float, float]:
        if nc <= 0 or ns <= 0:
            return 0.0, math.inf
        pc, ps, pool = xc / nc, xs / ns, (xc + xs) / (nc + ns)
        se0 = math.sqrt(pool * (1 - pool) * (1 / nc + 1 / ns))
        se = math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns)
        return ((pc - ps) / se0 if se0 > 0 else 0.0), pc - ps + NAIVE_Z * se

    z_err, up_err = z_and_upper(c.errors, c.total, s.errors, s.total)
    s99 = quantile_from_buckets(s.latency_buckets, 0.99)
    z_lat, slow_ok = 0.0, False
    if s99 is not None:
        bound = min((b for b in LATENCY_BUCKETS if b >= 1.1 * s99), default=LATENCY_BUCKETS[-1])
        nc, ns = c.latency_buckets[math.inf], s.latency_buckets[math.inf]
        xc, xs = nc - c.latency_buckets[bound], ns - s.latency_buckets[bound]
        z_lat, _ = z_and_upper(xc, nc, xs, ns)
        pc = xc / nc if nc else 1.0
        slow_ok = nc > 0 and pc + NAIVE_Z * math.sqrt(max(pc * (1 - pc), 1e-12) / nc) <= 0.01
    if z_err > NAIVE_Z or z_lat > NAIVE_Z:
        return Judgement("rollback", "z-test significant", ())
    err = policy.checks.error_rate
    margin = (err.max_ratio_promote - 1) * s.errors / max(s.total, 1.0) + err.margin
    ok = up_err <= margin and slow_ok
    return Judgement("promote" if ok else "inconclusive" if final else "continue", "", ())


@dataclass
class Method:
    key: str
    label: str
    run: Callable[[Scenario, int, float, float, dict[str, Any]], Result]
    results: dict[str, list[Result]] = field(default_factory=dict)


METHODS = (
    Method("judge", "judge (anytime-valid)", lambda sc, seed, iv, bake, cal: run_monitor(judge, sc, seed, iv, bake)),
    Method("flagger_cal", "Flagger, calibrated",
           lambda sc, seed, iv, bake, cal: run_flagger(sc, seed, cal[group_of(sc)], bake)),
    Method("flagger_100", "Flagger, cal. 100 req/s",
           lambda sc, seed, iv, bake, cal: run_flagger(sc, seed, cal[group_of(sc, narrow=True)], bake)),
    Method("flagger", "Flagger, docs (min 99)",
           lambda sc, seed, iv, bake, cal: run_flagger(sc, seed, FLAGGER_DOCS, bake)),
    Method("kayenta", "Kayenta-style (30 min)", lambda sc, seed, iv, bake, cal: run_kayenta(sc, seed, KAYENTA)),
    Method("naive", "naive z-test every look",
           lambda sc, seed, iv, bake, cal: run_monitor(naive_judge, sc, seed, iv, bake)),
)


def group_of(sc: Scenario, narrow: bool = False) -> str:
    """The Flagger calibration a row is judged with: made on rows of its own granularity (narrow: A/A 100 req/s)."""
    if sc.grain is not None:
        return "cloudwatch_aa" if narrow else "cloudwatch"
    return "aa_high" if narrow else "all"


def methods_of(sc: Scenario) -> list[int]:
    return [m for m, method in enumerate(METHODS) if sc.methods is None or method.key in sc.methods]


def _job(args: tuple[int, int, int, int, float, float, dict[str, Any]]) -> tuple[int, int, list[Result]]:
    s_i, m_i, first, last, interval, bake, cal = args
    sc, method = SCENARIOS[s_i], METHODS[m_i]
    interval = sc.interval or interval
    # The same seed for every method in a replication: as common random numbers as adaptive weights allow.
    seeds = [int(np.random.SeedSequence([s_i, r]).generate_state(1)[0]) for r in range(first, last)]
    return s_i, m_i, [method.run(sc, seed, interval, bake, cal) for seed in seeds]


def no_data_checks(grain: Granularity | None) -> int:
    """Flagger's checks that find nothing published yet (each one fails): 2 at CloudWatch's defaults."""
    k = 1
    while grain is not None and grain.cutoff(k * FLAGGER_DOCS["interval"]) <= 0:
        k += 1
    return k - 1


def flagger_grid(sc: Scenario, quick: bool) -> list[dict[str, Any]]:
    """Thresholds 1-6 (counted from the first check that has data) x success-rate minimums 96-99."""
    late = no_data_checks(sc.grain)
    return [{**FLAGGER_DOCS, "threshold": late + th, "success_min": round(96.0 + 0.25 * k, 2)}
            for th in range(1, 7) for k in range(13) if not quick or (th in (1, 5) and k in (8, 12))]


def _calibration_job(args: tuple[Scenario, float, bool, int]) -> tuple[str, list[Result]]:
    sc, bake, quick, seed = args
    return sc.key, [run_flagger(sc, seed, cfg, bake) for cfg in flagger_grid(sc, quick)]


GROUP_NOTES = {"all": "all healthy rows", "aa_high": "A/A 100 req/s only",
               "cloudwatch": "at CloudWatch granularity, all healthy rows",
               "cloudwatch_aa": "at CloudWatch granularity, A/A 100 req/s only"}


def calibration_groups(selected: list[int], bakes: dict[str, float]) -> dict[str, tuple[list[Cal], Cal]]:
    """name -> (the healthy rows it must promote, the doubled-error-rate row it must roll back fast).

    At CloudWatch granularity the healthy rows are every healthy row's twin at that granularity
    (run for the calibration only), so Flagger there is held to the same promise as on fresh data.
    """
    by_key = {sc.key: sc for sc in SCENARIOS}
    fresh = [sc for sc in SCENARIOS if sc.healthy and sc.grain is None]

    def cal(sc: Scenario, like: Scenario | None = None) -> Cal:
        return sc, bakes[(like or sc).key]

    def twin(sc: Scenario) -> Cal:
        return cal(replace(sc, key=f"cw_{sc.key}", grain=CLOUDWATCH), sc)

    groups = {"all": ([cal(sc) for sc in fresh], cal(by_key["err_2x"])),
              "aa_high": ([cal(by_key["aa_high"])], cal(by_key["err_2x"])),
              "cloudwatch": ([twin(sc) for sc in fresh], cal(by_key["cw_err_2x"])),
              "cloudwatch_aa": ([cal(by_key["cw_aa"])], cal(by_key["cw_err_2x"]))}
    needed = {group_of(SCENARIOS[s], narrow) for s in selected for narrow in (False, True)}
    return {name: g for name, g in groups.items() if name in needed}


def calibrate_flagger(reps: int, pool: Any, groups: dict[str, tuple[list[Cal], Cal]],
                      quick: bool = False) -> tuple[dict[str, dict[str, Any]], str]:
    """Flagger's threshold and success-rate minimum, calibrated to the judge's false-rollback budget.

    Among the settings whose healthy canaries are promoted >= 95% of the time (rolled back or
    left undecided at most 5%) *and* that roll back a doubled error rate >= 95% of the time, the
    one with the fastest median rollback. ``all``: every healthy row, the judge's own promise;
    ``aa_high``: the 100 req/s A/A row only (fast, but see how it fares on the other rows); the
    same two at CloudWatch granularity (``cloudwatch``, ``cloudwatch_aa``).
    Searched on seeds the table does not use, so the calibration never sees the test.
    """
    rows = {sc.key: (sc, bake) for healthy, bad in groups.values() for sc, bake in (*healthy, bad)}
    seeds = [int(np.random.SeedSequence([999, r]).generate_state(1)[0]) for r in range(reps)]
    jobs = [(sc, bake, quick, seed) for sc, bake in rows.values() for seed in seeds]
    done = pool.map(_calibration_job, jobs, chunksize=4) if pool else [_calibration_job(j) for j in jobs]
    by_row: dict[str, list[list[Result]]] = {}
    for key, res in done:
        by_row.setdefault(key, []).append(res)
    chosen: dict[str, dict[str, Any]] = {}
    for name, (healthy, (bad_row, _)) in groups.items():
        grid = flagger_grid(bad_row, quick)  # a group's rows share a granularity, hence a grid
        best: tuple[float, dict[str, Any]] | None = None
        for g, cfg in enumerate(grid):
            false = max(np.mean([r[g].decision != "promote" for r in by_row[sc.key]]) for sc, _ in healthy)
            bad = [r[g] for r in by_row[bad_row.key]]
            caught = [r.t for r in bad if r.decision == "rollback"]
            if false <= 0.05 and len(caught) >= 0.95 * len(bad) and (best is None or np.median(caught) < best[0]):
                best = (float(np.median(caught)), cfg)
        chosen[name] = best[1] if best else FLAGGER_DOCS
    note = "; ".join(f"{GROUP_NOTES[k]}: threshold {c['threshold']}, min {c['success_min']}"
                     + (" (no setting met both: the docs')" if c is FLAGGER_DOCS else "") for k, c in chosen.items())
    size = len(flagger_grid(SCENARIOS[0], quick))
    return chosen, f"{note} (of {size} settings, {reps} calibration runs each)"


def select(only: str | None) -> list[int]:
    """The rows to run: those whose key contains one of the comma-separated words (``cloudwatch``: ``cw_``)."""
    if not only:
        return list(range(len(SCENARIOS)))
    words = [w.strip().replace("cloudwatch", "cw_") for w in only.split(",") if w.strip()]
    chosen = [i for i, sc in enumerate(SCENARIOS) if any(w in sc.key for w in words)]
    if not chosen:
        raise SystemExit(f"--only {only!r} matches no scenario; keys: {', '.join(sc.key for sc in SCENARIOS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200, help="replications per scenario and method (default 200)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between the judge's looks (default 10)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--quick", action="store_true", help="a 4-setting Flagger calibration (a smoke test)")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated parts of scenario keys to run, e.g. "
                    "`cloudwatch` (the cw_* rows) or `err_2x,aa_high` (default: every row)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    selected = select(args.only)
    bakes = {sc.key: planned_bake(sc, sc.interval or args.interval) for sc in SCENARIOS}
    pool = Pool(args.jobs) if args.jobs > 1 else None
    try:
        cal, cal_note = calibrate_flagger(args.reps if args.quick else max(20, args.reps // 2), pool,
                                          calibration_groups(selected, bakes), args.quick)
        chunk = max(1, min(10, args.reps))
        jobs = [(s, m, r, min(r + chunk, args.reps), args.interval, bakes[SCENARIOS[s].key], cal)
                for s in selected for m in methods_of(SCENARIOS[s]) for r in range(0, args.reps, chunk)]
        # The judge's long runs are the slow ones: hand them out first so the pool stays busy.
        jobs.sort(key=lambda j: (METHODS[j[1]].key != "judge", -j[5]))
        done = pool.map(_job, jobs, chunksize=1) if pool else [_job(j) for j in jobs]
    finally:
        if pool:
            pool.close()
    results: dict[tuple[int, int], list[Result]] = {}
    for s, m, res in done:
        results.setdefault((s, m), []).extend(res)
    table = {key: summarise(SCENARIOS[key[0]], res) for key, res in results.items()}
    print_table(table, SCENARIOS, METHODS, bakes, args)
    print()
    print_targets(table, SCENARIOS, METHODS)
    print(f"\nSettings. judge: the defaults (CanaryPolicy: steps w..5w, min_requests 200, confidence 0.95, error rate "
          f"promote x1.5 + 0.1 points, per step max(x2, +0.5 points), max_ratio 1, latency p50/p99 +10%, "
          f"max_divergence 0.02, last look 120 s), a look every {args.interval:g} s (at CloudWatch granularity "
          f"every {CLOUDWATCH.period:g} s: one period, published {CLOUDWATCH.delay:g} s late).")
    print(f"Flagger calibrated: {cal_note}; docs: threshold 5, min 99; both interval 60 s, request-duration p99 max "
          f"{FLAGGER_DOCS['p99_max_ms']:.0f} ms, stepWeight w, maxWeight 5w, failed-checks counter never reset; at "
          f"CloudWatch granularity each check reads the newest published period, and the "
          f"{no_data_checks(CLOUDWATCH)} checks before one is published fail (no values).")
    print("Kayenta-style: NetflixACAJudge Mann-Whitney, confLevel 0.98, tolerance 0.25, allowedIncrease 1.0, IQR "
          "outlier removal x3, 30 one-minute points per side, fixed weight w, baseline = the stable; a regression "
          "'from step k' starts k/5 into its window, 'at promote-ready' in its last minute.")
    print(f"Naive: one-sided 95% z-tests on cumulative 5xx and slow-request counts at every look; promote on the "
          f"Wald 95% bound. Runtime {time.perf_counter() - started:.0f} s on {args.jobs} processes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
