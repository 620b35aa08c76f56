"""gate: judge a candidate model offline and register it as ``challenger`` when it passes.

The candidate and the current champion (alias ``champion``, if any) score the same
evaluation rows. Checks (:mod:`mlcicd.evaluation.gate_checks`): absolute thresholds
(``gate.thresholds``), change rules and tolerances against the champion
(``gate.champion``), a paired non-inferiority test (``gate.non_inferiority``), fairness
across ``data.sensitive`` columns (``gate.fairness``) and single-row latency, for a
binary, multiclass or regression model (``model.task``, detected when not given). Only a
passing candidate is registered (:meth:`Registry.register_challenger`); the evidence goes
onto the model version as ``mlci.gate.*`` tags so later stages and humans can see why it
was allowed through. The config was checked when it was loaded (:mod:`mlcicd.config_gate`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.errors import ConfigError, DataError, UsageError
from mlcicd.registry import CHALLENGER, CHAMPION, Registry, run_of
from mlcicd.report import StageResult, Verdict
from mlcicd.stages import StageContext

if TYPE_CHECKING:
    import pandas as pd

    from mlcicd.evaluation.scoring import Scored


def run(ctx: StageContext) -> StageResult:
    model_uri = str(ctx.inputs.model_uri)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    frame, eval_path, shown = _read_eval(ctx)
    sensitive = _sensitive(ctx, frame, shown)
    timings["read_eval"] = time.perf_counter() - clock

    clock = time.perf_counter()
    import mlflow.pyfunc  # noqa: F401 - timed here: the stage's largest fixed cost

    timings["import_mlflow"] = time.perf_counter() - clock

    registry = Registry.from_config(ctx.config)
    # pyfunc loading resolves runs:/ and models:/ through MLflow's process-wide URIs.
    with registry.pinned_uris():
        return _judge_and_register(ctx, registry, model_uri, frame, eval_path, sensitive, shown, timings)


def _judge_and_register(ctx: StageContext, registry: Registry, model_uri: str, frame: Any, eval_path: Path,
                        sensitive: Any, shown: str, timings: dict[str, float]) -> StageResult:
    from mlcicd.evaluation.gate_checks import TAG_PREFIX, GateChecks, TaskMismatch, summary
    from mlcicd.evaluation.scoring import check_label_types, load_model, score

    tracking_uri = registry.tracking_uri
    label = ctx.config.data.label
    y_true = frame[label].to_numpy()
    features = frame.drop(columns=[label])

    clock = time.perf_counter()
    _check_store(tracking_uri)
    candidate_model = load_model(model_uri, role="candidate", where="input model-uri")
    ctx.ci.log(f"scoring {len(frame):,} rows of {shown} with {model_uri}")
    candidate = score(model_uri, candidate_model, features, shown=shown)
    check_label_types(y_true, candidate.y_pred, label=label, shown=shown, uri=model_uri)
    champion_mv = registry.by_alias(CHAMPION)
    champion: Scored | None = None
    champion_error = ""
    if champion_mv is not None:
        ctx.ci.log(f"scoring the same rows with the champion {champion_mv.uri}")
        try:
            where = f"{champion_mv.uri} (alias champion)"
            champion = score(champion_mv.uri, load_model(champion_mv.uri, role="champion", where=where), features,
                             shown=shown)
        except UsageError as exc:
            # Features may have changed on purpose, or the champion's files are gone: either way
            # there is nothing to compare with, which is not a pass (inconclusive, exit 3).
            champion_error = f"champion v{champion_mv.version} could not be evaluated: {exc.what}"
    timings["load_and_predict"] = time.perf_counter() - clock

    try:
        judge = GateChecks(ctx.config.gate, y_true, candidate, champion, champion_mv, sensitive,
                           task=ctx.config.model.task)
    except TaskMismatch as exc:
        raise ConfigError(exc.what, where=f"{ctx.config.source or 'mlci.yaml'}: {exc.key}", fix=exc.fix) from None
    clock = time.perf_counter()
    judge.measure_latency()
    timings["latency"] = time.perf_counter() - clock
    clock = time.perf_counter()
    checks = judge.checks(champion_error)
    timings["statistics"] = time.perf_counter() - clock

    failures = [c for c in checks if c.failed]
    if failures:
        verdict = Verdict.FAIL
    elif champion_error:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    outputs = {"model-version": "", "model-uri": ""}
    registered = ""
    if verdict is Verdict.PASS and ctx.inputs.register:
        clock = time.perf_counter()
        mv = registry.register_challenger(model_uri, judge.tags(checks, verdict, eval_path),
                                          uri_tag=f"{TAG_PREFIX}model_uri")
        timings["register"] = time.perf_counter() - clock
        outputs = {"model-version": mv.version, "model-uri": mv.uri}
        registered = f" Registered as {mv.uri} (alias {CHALLENGER})."
    elif verdict is Verdict.PASS:
        registered = " Not registered (input register is false)."

    text = summary(verdict, checks, judge, champion_error) + registered
    figures = {**judge.figures(), "seconds": {k: round(v, 3) for k, v in timings.items()}}
    evidence = {
        "model_uri": model_uri,
        "run_id": run_of(model_uri),
        "champion_uri": champion_mv.uri if champion_mv else None,
        "eval_data": str(eval_path),
        "tracking_uri": _without_credentials(tracking_uri),
    }
    return StageResult("gate", verdict, text, checks=checks, outputs=outputs, figures=figures, evidence=evidence)


# -- inputs ------------------------------------------------------------------------------------------------------


def _read_eval(ctx: StageContext) -> tuple[pd.DataFrame, Path, str]:
    path = ctx.input_path("eval-data")
    if path is None:
        raise UsageError("no evaluation data given", where="input eval-data / mlci.yaml: data.eval",
                         fix="set `data: {eval: data/eval.csv}` in mlci.yaml or pass --eval-data PATH")
    shown = str(ctx.inputs.values.get("eval-data"))
    origin = ctx.inputs.sources.get("eval-data", "eval-data")
    from mlcicd.data.load import DataFile, load_table

    label_origin = f"{ctx.config.source or 'mlci.yaml'}: data.label"
    frame = load_table(DataFile("eval", path, shown, origin), label=ctx.config.data.label, label_origin=label_origin)
    missing = int(frame[ctx.config.data.label].isna().sum())
    if missing:
        raise DataError(f"{missing:,} of {len(frame):,} rows have no label ({ctx.config.data.label!r})",
                        where=shown, fix="fill in or drop the unlabelled rows: the gate cannot judge them")
    return frame, path, shown


def _sensitive(ctx: StageContext, frame: pd.DataFrame, shown: str) -> dict[str, np.ndarray]:
    columns = ctx.config.data.sensitive
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ConfigError(
            f"sensitive column(s) {', '.join(map(repr, absent))} not found in the evaluation data {shown} "
            f"(columns: {', '.join(map(str, frame.columns))})",
            where=f"{ctx.config.source or 'mlci.yaml'}: data.sensitive",
            fix="list columns that exist in the evaluation data, or add them to it",
        )
    return {c: frame[c].to_numpy() for c in columns}


def _check_store(tracking_uri: str) -> None:
    """A SQLite store that does not exist cannot hold the candidate; MLflow would create an empty one."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not Path(tracking_uri[len(prefix):]).is_file():
        raise UsageError(
            f"no MLflow store at {tracking_uri[len(prefix):]}",
            where="input tracking-uri / mlci.yaml: mlflow.tracking_uri",
            fix="run the train stage first (it creates the store), or point tracking-uri at the store the "
            "model was logged to",
        )


def _without_credentials(uri: str) -> str:
    """Reports are published (step summaries, MR comments): never copy a user:password@ into them."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))
