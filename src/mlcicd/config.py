"""``mlci.yaml``: load, validate, apply defaults.

The file is parsed once into a typed :class:`Config` (by :mod:`mlcicd.settings`). Every
error names the file, the key path, what was expected and an example fix. Relative paths in
the file are relative to the directory holding it (the project root).

Plugins own their sections: ``deploy.<target>`` and ``deploy.canary.sources.<name>`` are
built by the plugin's own settings type (see :mod:`mlcicd.plugins`), so a new target or
metric source brings its settings without a change here.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlcicd import plugins
from mlcicd.config_deploy import BlueGreenConfig, SmokeCheckConfig, Strategy, check_blue_green
from mlcicd.config_gate import (
    Bound,
    ChangeThreshold,
    FairnessConfig,
    GateConfig,
    ModelConfig,
    NonInferiority,
    check_gate,
)
from mlcicd.config_notify import NotifyConfig, check_notify, unquote_on
from mlcicd.errors import ConfigError
from mlcicd.settings import Source, build, plugin_section

__all__ = [
    "BlueGreenConfig",
    "Bound",
    "ChangeThreshold",
    "Config",
    "FairnessConfig",
    "GateConfig",
    "ModelConfig",
    "NonInferiority",
    "NotifyConfig",
    "SmokeCheckConfig",
    "Strategy",
    "load_config",
    "lookup",
    "parse_config",
]

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
    # The main tag (default v<model version>); the image is also tagged sha-<git commit>.
    tag: str | None = None
    builder: Literal["auto", "buildah", "docker", "podman"] = "auto"
    base: str = "python:3.11-slim"
    push: bool = True
    # model: the model server and the model's own requirements, as wheels resolved on the builder
    # and installed offline; none: the base image already has both.
    requirements: Literal["model", "none"] = "model"
    # The image's Python (default: the one the model was saved with) and wheel platform
    # (default manylinux_2_28_<this machine's CPU>: any glibc >= 2.28 base).
    python: str | None = None
    platform: str | None = None
    # Serves the model's `mlflow==X` pin: the server needs only mlflow.pyfunc (`mlflow` for everything).
    mlflow_package: str = "mlflow-skinny"
    # A pip constraints file (relative to mlci.yaml) pinning the versions of indirect requirements.
    constraints: str | None = None
    # Shell command run as root in the image before the requirements (e.g. apt-get install -y libgomp1).
    install: str = ""
    # Load the model and answer its input example inside the image during the build.
    check: bool = True
    # Registry login before the push: auto picks ECR, GHCR or the GitLab registry from the host.
    login: Literal["auto", "ecr", "ghcr", "gitlab", "none"] = "auto"


CheckMode = Literal["enforce", "observe"]


@dataclass
class ErrorRateCheck:
    """The canary's 5xx rate against the stable release's, on concurrent traffic."""

    mode: CheckMode = "enforce"
    # A critical check rolls back on its own the moment a regression is shown.
    critical: bool = True
    # Promote margin: the last step must show, on its own traffic, canary rate <= max_ratio_promote x
    # stable rate + margin. The ratio is what matters at ordinary rates, the absolute floor `margin` near
    # zero (0.001 = 0.1 percentage points). Defaults allow 0.1% at a 0% base, 0.25% at 0.1%, 1.6% at 1%
    # and 7.6% at 5%. For an absolute margin only: `max_ratio_promote: 1, margin: 0.01`.
    max_ratio_promote: float = 1.5
    margin: float = 0.001
    # Every step must show the same on its own traffic with this looser margin before the walk goes on
    # (x2 the stable's rate, or +0.5 points where that is larger, by default): a doubled rate never
    # passes a step, so a regression that starts at a later step stops the walk there. Never stricter
    # than the promote margin (the larger ratio and margin apply).
    step_max_ratio: float = 2.0
    step_margin: float = 0.005
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
    # A canary quantile up to this much slower than the stable's is not a regression. Kept as stated to
    # within about a point: the bound is interpolated inside the server's buckets (~25% apart), not
    # rounded to an edge.
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
    # deploy-canary and `mlci-gen check` estimate what the claims need at your traffic and say
    # when this is too short to decide.
    duration: float = 1800.0
    interval: float = 5.0
    # After the last step shows promote, keep watching this long (seconds) for a regression that
    # starts late, with a test restarted for it; 0 promotes at once.
    last_look: float = 120.0
    # Requests per second both versions serve together, for planning the bake before any traffic
    # is observed (`mlci-gen check`); deploy-canary measures it when it can.
    expected_rps: float | None = None
    # 1 - the false-rollback rate, held however often the judge looks (anytime-valid tests).
    confidence: float = 0.95
    # Consecutive failed metric reads before the analysis counts the source as broken.
    max_measurement_errors: int = 3
    # Consecutive looks a non-critical check must fail before it rolls the canary back.
    failure_limit: int = 3
    on_inconclusive: Literal["rollback", "hold"] = "rollback"
    # Where live metrics come from: an installed metric-source plugin (built in: scrape, the
    # servers' /metrics pages; prometheus, a Prometheus server).
    source: str = "scrape"
    # Each source's own settings, `sources.<name>: {...}`, built by the plugin's settings type.
    sources: dict[str, Any] = field(default_factory=dict)
    checks: CanaryChecks = field(default_factory=CanaryChecks)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def weights(self) -> list[int]:
        """The traffic steps the analysis walks."""
        return list(self.steps) or [self.weight]


@dataclass
class DeployConfig:
    # An installed deploy-target plugin (built in: local).
    target: str = "local"
    # canary: a share of traffic, judged step by step; blue-green: smoke checks, then all at once.
    strategy: Strategy = "canary"
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    blue_green: BlueGreenConfig = field(default_factory=BlueGreenConfig)
    # Each target's own settings, `deploy.<name>: {...}` (every other key under deploy), built
    # by the plugin's settings type.
    targets: dict[str, Any] = field(default_factory=dict, metadata={"rest": True})


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
    # Who is told about rollbacks, promotions, inconclusive canaries, failed gates and drift.
    notify: NotifyConfig = field(default_factory=NotifyConfig)
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
        """The tracking URI to connect to (see :func:`store_uri`)."""
        return store_uri(self.mlflow.tracking_uri, self.root)

    def plugin_settings(self, kind: plugins.Kind, name: str) -> Any:
        """Plugin ``name``'s settings: its section as built when the file was loaded, or, with no
        section, the settings type's defaults (a ConfigError names any key that has none)."""
        attr, _ = SECTIONS[kind]
        sections = lookup(self, attr)
        if name not in sections:
            plugins.load(kind, name)  # picked by an input: PluginError names the installed ones
            sections[name] = _plugin_section(kind, name, None, str(self.source or DEFAULT_CONFIG))
        return sections[name]


def store_uri(uri: str, root: Path) -> str:
    """An MLflow store URI as a process anywhere can use it: the one place a relative SQLite
    path (``sqlite:///.mlci/mlflow.db``) is anchored at the project root, not the cwd."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix):]).resolve())
    return uri


# Where each kind of plugin keeps its sections: the Config attribute, and the key users write.
SECTIONS: dict[plugins.Kind, tuple[str, str]] = {
    plugins.TARGETS: ("deploy.targets", "deploy.{name}"),
    plugins.METRICS: ("deploy.canary.sources", "deploy.canary.sources.{name}"),
}
# Keys that moved: old dotted key -> where it lives now.
MOVED = {"deploy.canary.prometheus": "deploy.canary.sources.prometheus"}


def section_key(kind: plugins.Kind, name: str) -> str:
    """The mlci.yaml key of plugin ``name``'s section, e.g. ``deploy.local``."""
    return SECTIONS[kind][1].format(name=name)


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
    cfg = build(Config, unquote_on(raw), Source(filename, EXAMPLE, MOVED))
    assert isinstance(cfg, Config)
    _check_semantics(cfg, filename)
    _check_plugins(cfg, filename)
    return cfg


def _check_plugins(cfg: Config, filename: str) -> None:
    """The selected plugins are installed, and every plugin section is built by its plugin."""
    for kind, selected in ((plugins.TARGETS, cfg.deploy.target), (plugins.METRICS, cfg.deploy.canary.source)):
        if not plugins.installed(kind, selected):
            names = sorted(plugins.available(kind))
            close = difflib.get_close_matches(selected, names, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ConfigError(f"no {kind.name} {selected!r} is installed", where=f"{filename}: {kind.selected_by}",
                              fix=f"{hint}use one of: {', '.join(names)}, or install the plugin that registers "
                              f"{selected!r} in the entry-point group `{kind.group}` (in every job)")
        attr, _ = SECTIONS[kind]
        sections = lookup(cfg, attr)
        for name, raw in list(sections.items()):
            sections[name] = _plugin_section(kind, name, raw, filename)


def _plugin_section(kind: plugins.Kind, name: str, raw: Any, filename: str) -> Any:
    # Beside the target sections under deploy are deploy's own keys ("did you mean canary?").
    siblings = [f.name for f in dataclasses.fields(DeployConfig) if not f.metadata.get("rest")] \
        if kind is plugins.TARGETS else []
    return plugin_section(kind, name, raw, Source(filename, EXAMPLE, MOVED), section_key(kind, name), siblings)


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
    if pol.last_look < 0:
        fail("deploy.canary.last_look", f"must not be negative, got {pol.last_look}",
             "e.g. `last_look: 120`, or 0 to promote as soon as the last step shows it")
    if pol.expected_rps is not None and pol.expected_rps <= 0:
        fail("deploy.canary.expected_rps", f"must be positive, got {pol.expected_rps}",
             "e.g. `expected_rps: 50` (requests per second both versions serve together), or remove it")
    checks = pol.checks
    _check_error_rate(checks.error_rate, fail)
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
    check_blue_green(cfg.deploy.blue_green, fail)
    check_notify(cfg.notify, fail)
    if cfg.data.label in cfg.data.sensitive:
        fail("data.sensitive", f"the label column {cfg.data.label!r} cannot be a sensitive attribute",
             "list demographic columns such as `sensitive: [gender]`")


def _check_error_rate(err: ErrorRateCheck, fail: Any) -> None:
    key = "deploy.canary.checks.error_rate"
    for name in ("margin", "step_margin"):
        if not 0 <= getattr(err, name) < 1:
            fail(f"{key}.{name}", f"must be in [0, 1) (a rate difference), got {getattr(err, name)}",
                 f"e.g. `{name}: {0.001 if name == 'margin' else 0.005}` ({'0.1' if name == 'margin' else '0.5'} "
                 "percentage points)")
    if not 0 < err.max <= 1:
        fail(f"{key}.max", f"must be in (0, 1], got {err.max}", "e.g. `max: 0.05` (5% on a first release)")
    for name in ("max_ratio", "max_ratio_promote", "step_max_ratio"):
        if getattr(err, name) < 1:
            fail(f"{key}.{name}", f"must be at least 1, got {getattr(err, name)}",
                 "e.g. `max_ratio: 1.0` (any increase shown with confidence is a regression)" if name == "max_ratio"
                 else f"e.g. `{name}: {1.5 if name == 'max_ratio_promote' else 2.0}`")
    if err.max_ratio_promote == 1 and err.margin == 0:
        fail(f"{key}.margin", "with max_ratio_promote 1 and margin 0 no canary can ever be shown no worse",
             "allow some margin, e.g. `margin: 0.001` or `max_ratio_promote: 1.5`")


def lookup(cfg: Config, dotted: str) -> Any:
    """Value of a dotted key (``deploy.canary.weight``) in a loaded config."""
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node
