"""``mlci.yaml``: load, validate, apply defaults.

The file is parsed once into a typed :class:`Config`. Every error names the file,
the key path, what was expected and an example fix. Relative paths in the file are
relative to the directory holding it (the project root).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcicd.config_gate import (
    Bound,
    ChangeThreshold,
    FairnessConfig,
    GateConfig,
    ModelConfig,
    NonInferiority,
    check_gate,
)
from mlcicd.errors import ConfigError

__all__ = ["Bound", "ChangeThreshold", "Config", "FairnessConfig", "GateConfig", "ModelConfig", "NonInferiority",
           "load_config", "lookup", "parse_config"]

DEFAULT_CONFIG = "mlci.yaml"


@dataclass
class ColumnSpec:
    type: Literal["integer", "number", "string", "boolean", "category"] | None = None
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    unique: bool = False
    allowed: list[str] | None = None


@dataclass
class QualityConfig:
    max_missing_pct: float = 5.0
    max_duplicate_pct: float = 1.0
    # The rarest label class must make up at least this share of rows.
    min_label_pct: float = 5.0
    max_outlier_pct: float = 5.0
    # Tukey's fences: a value is an outlier beyond Q1 - k*IQR or Q3 + k*IQR.
    iqr_factor: float = 3.0


@dataclass
class DriftConfig:
    p_value: float = 0.01
    fail: bool = True
    # Sample at most this many rows per side: p-values of huge samples flag trivial shifts.
    max_rows: int = 20_000


@dataclass
class DataConfig:
    label: str
    train: str | None = None
    eval: str | None = None
    reference: str | None = None
    sensitive: list[str] = field(default_factory=list)
    id_columns: list[str] = field(default_factory=list)
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    # A Great Expectations 1.x Expectation Suite (JSON) that train and eval data must meet.
    expectations: str | None = None
    quality: QualityConfig = field(default_factory=QualityConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)


@dataclass
class TrainConfig:
    command: str = "python train.py"
    experiment: str | None = None
    timeout: float = 3600.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class MlflowConfig:
    model_name: str
    tracking_uri: str = "sqlite:///.mlci/mlflow.db"
    registry_uri: str | None = None


@dataclass
class ImageConfig:
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    builder: Literal["auto", "buildah", "docker", "podman"] = "auto"
    base: str = "python:3.11-slim"
    push: bool = True
    # Runs inside the image to install the model server; empty to rely on the base image.
    install: str = "pip install --no-cache-dir 'ml-cicd[serve]'"


@dataclass
class LocalTargetConfig:
    port: int = 8080
    state_dir: str = ".mlci/local"


CheckMode = Literal["enforce", "observe"]


@dataclass
class ErrorRateCheck:
    """The canary's 5xx rate against the stable release's, on concurrent traffic."""

    mode: CheckMode = "enforce"
    # A critical check rolls back on its own the moment a regression is shown.
    critical: bool = True
    # Non-inferiority margin: the canary may be at most this much worse (0.01 = one percentage point).
    margin: float = 0.01
    # A regression is a rate ratio above this (1.0: any increase, once shown with confidence).
    max_ratio: float = 1.0
    # Absolute limit, the only yardstick on a first release (no stable to compare with).
    max: float = 0.05


@dataclass
class LatencyCheck:
    """Latency quantiles of the canary against the stable release's, from the servers' histograms."""

    mode: CheckMode = "enforce"
    critical: bool = True
    # Showing a quantile no worse takes about 3/(1 - q) canary requests at the least (300 for p99):
    # at low traffic list lower quantiles (e.g. [0.5, 0.9]) and keep max_p99_ms as the tail guard.
    quantiles: list[float] = field(default_factory=lambda: [0.5, 0.99])
    # A canary quantile up to this much slower than the stable's is not a regression.
    tolerance_pct: float = 10.0
    # Absolute limit on the canary's p99 (the only yardstick on a first release).
    max_p99_ms: float = 1000.0


@dataclass
class PredictionCheck:
    """The canary's live prediction mix against the stable's: healthy and still wrong is caught here."""

    mode: CheckMode = "enforce"
    critical: bool = False
    # Jensen-Shannon divergence (base 2: 0 identical, 1 disjoint) allowed between the two mixes;
    # a class mix moving from 70/30 to 50/50 is 0.03.
    max_divergence: float = 0.02
    # Predictions needed on each side before the mixes are compared.
    min_predictions: int = 100


@dataclass
class CustomCheck:
    """A user metric, Flagger-style: a query whose value must stay within [min, max]."""

    name: str
    # PromQL for the prometheus source; {slot} (canary/stable) and {selector} (the backend's
    # label selector) are substituted. The value must be a single number.
    query: str
    min: float | None = None
    max: float | None = None
    mode: CheckMode = "enforce"
    critical: bool = False


@dataclass
class CanaryChecks:
    error_rate: ErrorRateCheck = field(default_factory=ErrorRateCheck)
    latency: LatencyCheck = field(default_factory=LatencyCheck)
    predictions: PredictionCheck = field(default_factory=PredictionCheck)
    custom: list[CustomCheck] = field(default_factory=list)


@dataclass
class PrometheusConfig:
    url: str = "http://127.0.0.1:9090"
    # PromQL label selector that picks one backend's series; {address} is its host:port.
    selector: str = 'instance="{address}"'
    timeout: float = 5.0


@dataclass
class CanaryPolicy:
    # Percent of traffic the canary starts with (the first step when `steps` is empty).
    weight: int = 10
    # Progressive delivery: canary weights walked in order, e.g. [5, 25, 50]; empty means [weight].
    steps: list[int] = field(default_factory=list)
    # Canary requests each step needs before the canary may advance (or be promoted).
    min_requests: int = 200
    # Longest a single step may take (seconds); None: only `duration` bounds it.
    step_duration: float | None = None
    # Longest the whole analysis may take (seconds); then the verdict is what the evidence shows.
    duration: float = 300.0
    interval: float = 5.0
    # 1 - the false-rollback rate, held however often the judge looks (anytime-valid tests).
    confidence: float = 0.95
    # Consecutive failed metric reads before the analysis counts the source as broken.
    max_measurement_errors: int = 3
    # Consecutive looks a non-critical check must fail before it rolls the canary back.
    failure_limit: int = 3
    on_inconclusive: Literal["rollback", "hold"] = "rollback"
    # Where live metrics come from: the servers' /metrics pages, or a Prometheus server.
    source: Literal["scrape", "prometheus"] = "scrape"
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    checks: CanaryChecks = field(default_factory=CanaryChecks)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def weights(self) -> list[int]:
        """The traffic steps the analysis walks."""
        return list(self.steps) or [self.weight]


@dataclass
class DeployConfig:
    target: str = "local"
    local: LocalTargetConfig = field(default_factory=LocalTargetConfig)
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)


@dataclass
class Config:
    data: DataConfig
    mlflow: MlflowConfig
    version: int = 1
    project: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    # Set by the loader, not by the file.
    root: Path = field(default=Path("."), metadata={"internal": True})
    source: Path | None = field(default=None, metadata={"internal": True})

    def path(self, relative: str | None) -> Path | None:
        """Resolve a path from the file against the project root."""
        if relative is None:
            return None
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def state_dir(self) -> Path:
        return self.root / ".mlci"

    def tracking_uri(self) -> str:
        """SQLite URIs from the file are relative to the project root, not the cwd."""
        return absolutize_sqlite_uri(self.mlflow.tracking_uri, self.root)


def absolutize_sqlite_uri(uri: str, root: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix):]).resolve())
    return uri


EXAMPLE = """\
version: 1
data:
  train: data/train.csv
  eval: data/eval.csv
  label: default
mlflow:
  model_name: credit-risk
"""


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    source = Path(path)
    if not source.is_file():
        raise ConfigError(
            "config file not found",
            where=str(source),
            fix=f"create it with `mlci-gen init`, or pass --config PATH. A minimal file:\n{EXAMPLE}",
        )
    try:
        raw = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            f"is not valid YAML{line}: {getattr(exc, 'problem', exc)}",
            where=str(source),
            fix="check the indentation and quoting near that line",
        ) from None
    if raw is None:
        raw = {}
    cfg = parse_config(raw, str(source))
    cfg.root = source.resolve().parent
    cfg.source = source.resolve()
    return cfg


def parse_config(raw: Any, filename: str = DEFAULT_CONFIG) -> Config:
    cfg = _build(Config, raw, filename, "")
    assert isinstance(cfg, Config)
    _check_semantics(cfg, filename)
    return cfg


def _check_semantics(cfg: Config, filename: str) -> None:
    def fail(key: str, what: str, fix: str) -> None:
        raise ConfigError(what, where=f"{filename}: {key}", fix=fix)

    if cfg.version != 1:
        fail("version", f"unsupported version {cfg.version}", "set `version: 1`")
    pol = cfg.deploy.canary
    if not 1 <= pol.weight <= 99:
        fail("deploy.canary.weight", f"must be between 1 and 99, got {pol.weight}", "e.g. `weight: 10`")
    if not 0.5 <= pol.confidence < 1:
        fail("deploy.canary.confidence", f"must be in [0.5, 1), got {pol.confidence}", "e.g. `confidence: 0.95`")
    if pol.interval <= 0 or pol.duration <= 0:
        fail("deploy.canary", "duration and interval must be positive", "e.g. `duration: 60`, `interval: 5`")
    if pol.step_duration is not None and pol.step_duration <= 0:
        fail("deploy.canary.step_duration", f"must be positive, got {pol.step_duration}",
             "e.g. `step_duration: 120`, or remove it")
    steps = pol.steps
    if steps and (any(not 1 <= w <= 100 for w in steps) or any(a >= b for a, b in itertools.pairwise(steps))):
        fail("deploy.canary.steps", f"must be increasing percentages in 1..100, got {steps}",
             "e.g. `steps: [5, 25, 50, 100]`")
    if pol.min_requests < 1:
        fail("deploy.canary.min_requests", f"must be at least 1, got {pol.min_requests}", "e.g. `min_requests: 200`")
    for key in ("max_measurement_errors", "failure_limit"):
        if getattr(pol, key) < 1:
            fail(f"deploy.canary.{key}", f"must be at least 1, got {getattr(pol, key)}", f"e.g. `{key}: 3`")
    checks = pol.checks
    if not 0 <= checks.error_rate.margin < 1 or not 0 < checks.error_rate.max <= 1:
        fail("deploy.canary.checks.error_rate", "margin must be in [0, 1) and max in (0, 1]",
             "e.g. `error_rate: {margin: 0.01, max: 0.05}`")
    if checks.error_rate.max_ratio < 1:
        fail("deploy.canary.checks.error_rate.max_ratio", f"must be at least 1, got {checks.error_rate.max_ratio}",
             "e.g. `max_ratio: 1.0` (any increase shown with confidence is a regression)")
    if not checks.latency.quantiles or any(not 0 < q < 1 for q in checks.latency.quantiles):
        fail("deploy.canary.checks.latency.quantiles", f"must be fractions in (0, 1), got {checks.latency.quantiles}",
             "e.g. `quantiles: [0.5, 0.99]`")
    if checks.latency.tolerance_pct < 0:
        fail("deploy.canary.checks.latency.tolerance_pct", "must not be negative", "e.g. `tolerance_pct: 10`")
    if not 0 < checks.predictions.max_divergence < 1:
        fail("deploy.canary.checks.predictions.max_divergence",
             f"must be in (0, 1), got {checks.predictions.max_divergence}", "e.g. `max_divergence: 0.1`")
    names = [c.name for c in checks.custom]
    for i, custom in enumerate(checks.custom):
        if custom.min is None and custom.max is None:
            fail(f"deploy.canary.checks.custom[{i}]", f"check {custom.name!r} has neither min nor max",
                 "give the range the value must stay in, e.g. `max: 0.5`")
        if names.count(custom.name) > 1 or custom.name in ("error_rate", "latency", "predictions"):
            fail(f"deploy.canary.checks.custom[{i}].name", f"name {custom.name!r} is used twice",
                 "give every check its own name")
    check_gate(cfg.gate, cfg.model, fail)
    if cfg.data.label in cfg.data.sensitive:
        fail("data.sensitive", f"the label column {cfg.data.label!r} cannot be a sensitive attribute",
             "list demographic columns such as `sensitive: [gender]`")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _build(tp: Any, value: Any, filename: str, key: str) -> Any:
    where = f"{filename}: {key or '(top level)'}"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _build(args[0], value, filename, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{value!r} is not allowed",
                where=where,
                fix=f"use one of: {', '.join(map(str, allowed))}",
            )
        return value
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, filename, key)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # `sensitive: gender` is a natural shorthand for a one-item list
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {type(value).__name__}", where=where,
                              fix=f"write `{key.rsplit('.', 1)[-1]}: [a, b]`")
        return [_build(item_tp, v, filename, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", where=where,
                              fix=f"write `{key.rsplit('.', 1)[-1]}:` followed by indented `name: value` lines")
        return {str(k): _build(val_tp, v, filename, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", where=where, fix="write `true` or `false`")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (tp is int and isinstance(value, float)):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", where=where,
                              fix=f"write a plain {'whole ' if tp is int else ''}number without quotes")
        return tp(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"expected a string, got {value!r}", where=where, fix="quote the value")
        return str(value)
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - programming error


def _build_dataclass(tp: Any, value: Any, filename: str, key: str) -> Any:
    where = f"{filename}: {key or '(top level)'}"
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {value!r}", where=where,
                          fix="indent the keys below it, e.g.\n" + EXAMPLE)
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("internal")}
    unknown = [k for k in value if k not in fields]
    if unknown:
        bad = str(unknown[0])
        close = difflib.get_close_matches(bad, list(fields), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(fields)}"
        raise ConfigError(f"unknown key {bad!r}", where=f"{filename}: {_join(key, bad)}", fix=hint)
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in value:
            kwargs[name] = _build(hints[name], value[name], filename, sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"required key missing ({_describe(hints[name])})",
                where=f"{filename}: {sub}",
                fix=f"add it, e.g.\n{EXAMPLE}",
            )
    return tp(**kwargs)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def lookup(cfg: Config, dotted: str) -> Any:
    """Value of a dotted key (``deploy.canary.weight``) in a loaded config."""
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
