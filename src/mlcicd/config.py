"""``mlci.yaml``: load, validate, apply defaults.

The file is parsed once into a typed :class:`Config`. Every error names the file,
the key path, what was expected and an example fix. Relative paths in the file are
relative to the directory holding it (the project root).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcicd.errors import ConfigError

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
class Bound:
    min: float | None = None
    max: float | None = None


@dataclass
class ChangeThreshold:
    """MLflow's semantics: the candidate must beat the champion by at least this much."""

    min_absolute_change: float | None = None
    min_relative_change: float | None = None


@dataclass
class NonInferiority:
    metric: Literal["accuracy", "error_rate"] = "accuracy"
    margin: float = 0.01
    confidence: float = 0.95
    resamples: int = 10_000


@dataclass
class FairnessConfig:
    max_demographic_parity_difference: float = 0.1


@dataclass
class GateConfig:
    thresholds: dict[str, Bound] = field(default_factory=dict)
    champion: dict[str, ChangeThreshold] = field(default_factory=dict)
    non_inferiority: NonInferiority | None = field(default_factory=NonInferiority)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    latency_rows: int = 200


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


@dataclass
class CanaryPolicy:
    weight: int = 10
    duration: float = 60.0
    interval: float = 5.0
    min_requests: int = 200
    # Canary vs stable: how much worse the canary may be before it is rolled back.
    max_error_rate_increase: float = 0.01
    max_p99_latency_increase_pct: float = 50.0
    # Absolute limits, the only yardstick on a first release (no stable to compare with).
    max_error_rate: float = 0.05
    max_p99_latency_ms: float = 1000.0
    confidence: float = 0.95
    on_inconclusive: Literal["rollback", "hold"] = "rollback"


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
    ni = cfg.gate.non_inferiority
    if ni is not None and not 0.5 <= ni.confidence < 1:
        fail("gate.non_inferiority.confidence", f"must be in [0.5, 1), got {ni.confidence}",
             "e.g. `confidence: 0.95`")
    for name, change in cfg.gate.champion.items():
        for attr in ("min_absolute_change", "min_relative_change"):
            value = getattr(change, attr)
            if value is not None and value <= 0:
                fail(f"gate.champion.{name}.{attr}", f"must be a positive number (MLflow's semantics), got {value}",
                     f"remove the key to only require no regression, or e.g. `{attr}: 0.01`")
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
