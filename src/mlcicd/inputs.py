"""Parse a stage's inputs once, at the edge, into typed values.

Precedence: command-line option > ``MLCI_<NAME>`` environment variable > mlci.yaml key
(``Input.config_key``) > catalogue default. An empty environment variable counts as
unset, because CI systems pass every declared input, given or not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlcicd.catalog import Input, Stage, all_inputs
from mlcicd.config import Config, lookup
from mlcicd.errors import UsageError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class Origin(enum.Enum):
    """Where an input's value came from, in precedence order."""

    INPUT = "input"  # --<name> on the command line
    ENVIRONMENT = "environment"  # MLCI_<NAME>: how the actions and components pass their inputs
    CONFIG = "config"  # the input's mlci.yaml key
    DEFAULT = "default"  # the catalogue's default, or nothing at all

    @property
    def given(self) -> bool:
        """Given for this run (and so overriding mlci.yaml), rather than looked up."""
        return self in (Origin.INPUT, Origin.ENVIRONMENT)


def where(item: Input, origin: Origin, config_name: str) -> str:
    """The origin in the words a user would search for: ``--canary-weight``, ``MLCI_CANARY_WEIGHT``,
    ``mlci.yaml: deploy.canary.weight`` or ``default``."""
    if origin is Origin.INPUT:
        return f"--{item.name}"
    if origin is Origin.ENVIRONMENT:
        return item.env_var
    if origin is Origin.CONFIG:
        return f"{config_name}: {item.config_key}"
    return "default"


@dataclass(frozen=True)
class StageInputs:
    """Typed, resolved inputs of one stage run. Attribute access uses snake_case names."""

    stage: str
    values: Mapping[str, Any]
    origins: Mapping[str, Origin]
    # The origins in words (see :func:`where`), for messages.
    sources: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:
        key = name.replace("_", "-")
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(f"stage {self.stage!r} has no input {key!r}") from None

    def require(self, name: str, fix: str) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            raise UsageError(
                f"input {name!r} is required but was not given",
                where=f"stage {self.stage}",
                fix=fix,
            )
        return value

    def given(self, name: str) -> bool:
        """Whether the input was given for this run (option or environment), not looked up."""
        return self.origins.get(name, Origin.DEFAULT).given


def apply_overrides(stage: Stage, inputs: StageInputs, config: Config) -> None:
    """Write inputs given on the command line or by env back into the config, so code that
    reads the config (targets, registries) sees the same values as the stage itself."""
    for item in all_inputs(stage):
        value = inputs.values.get(item.name)
        if not item.config_key or value is None or not inputs.given(item.name):
            continue
        *parents, leaf = item.config_key.split(".")
        node: Any = config
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)


def convert(item: Input, raw: Any, origin: str) -> Any:
    """Turn a raw value (string from env/CLI, or a YAML value) into the input's type."""
    if raw is None:
        return None
    where = f"{origin} (input {item.name!r})"
    text = str(raw).strip()
    if item.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise UsageError(f"expected true or false, got {text!r}", where=where, fix=f"set {item.name}: true")
    if item.type in ("integer", "number"):
        try:
            number = float(text)
        except ValueError:
            raise UsageError(f"expected a number, got {text!r}", where=where,
                             fix=f"set {item.name} to a plain number, e.g. 10") from None
        if item.type == "integer":
            if not number.is_integer():
                raise UsageError(f"expected a whole number, got {text!r}", where=where,
                                 fix=f"set {item.name} to a whole number, e.g. 10")
            return int(number)
        return number
    if item.type == "choice" and text not in item.options:
        raise UsageError(f"{text!r} is not one of the options", where=where,
                         fix=f"use one of: {', '.join(item.options)}")
    return text


def resolve_inputs(
    stage: Stage,
    cli_values: Mapping[str, Any],
    env: Mapping[str, str],
    config: Config | None,
) -> StageInputs:
    config_name = str(config.source) if config is not None and config.source else "mlci.yaml"
    raw_values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for item in all_inputs(stage):
        if cli_values.get(item.name) not in (None, ""):
            raw_values[item.name], origins[item.name] = cli_values[item.name], Origin.INPUT
        elif env.get(item.env_var, "") != "":
            raw_values[item.name], origins[item.name] = env[item.env_var], Origin.ENVIRONMENT
        elif item.config_key and config is not None and lookup(config, item.config_key) is not None:
            raw_values[item.name], origins[item.name] = lookup(config, item.config_key), Origin.CONFIG
        else:
            raw_values[item.name], origins[item.name] = item.default, Origin.DEFAULT
    # A templated default names the model of this run, which the model-name input may change.
    model_name = raw_values.get("model-name") or (config.mlflow.model_name if config is not None else None)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for item in all_inputs(stage):
        raw, origin = raw_values[item.name], origins[item.name]
        if origin is Origin.DEFAULT and model_name and isinstance(raw, str) and "{model_name}" in raw:
            raw = raw.format(model_name=model_name)
        sources[item.name] = where(item, origin, config_name)
        values[item.name] = convert(item, raw, sources[item.name])
        if item.required and values[item.name] in (None, ""):
            raise UsageError(
                f"required input {item.name!r} was not given",
                where=f"stage {stage.id}",
                fix=f"pass `{item.name}:` in the action/component inputs, `--{item.name}` to mlci run, "
                f"or set {item.env_var}",
            )
    return StageInputs(stage.id, values, origins, sources)
