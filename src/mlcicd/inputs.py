"""Parse a stage's inputs once, at the edge, into typed values.

Precedence: command-line option > ``MLCI_<NAME>`` environment variable > mlci.yaml key
(``Input.config_key``) > catalogue default. An empty environment variable counts as
unset, because CI systems pass every declared input, given or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlcicd.catalog import Input, Stage, all_inputs
from mlcicd.config import Config, lookup
from mlcicd.errors import UsageError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class StageInputs:
    """Typed, resolved inputs of one stage run. Attribute access uses snake_case names."""

    stage: str
    values: Mapping[str, Any]
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


def apply_overrides(stage: Stage, inputs: StageInputs, config: Config) -> None:
    """Write inputs given on the command line or by env back into the config, so code that
    reads the config (targets, registries) sees the same values as the stage itself."""
    for item in all_inputs(stage):
        value = inputs.values.get(item.name)
        origin = inputs.sources.get(item.name, "")
        if not item.config_key or value is None or not (origin.startswith("--") or origin == item.env_var):
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
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for item in all_inputs(stage):
        raw: Any = None
        origin = ""
        if cli_values.get(item.name) not in (None, ""):
            raw, origin = cli_values[item.name], f"--{item.name}"
        elif env.get(item.env_var, "") != "":
            raw, origin = env[item.env_var], item.env_var
        elif item.config_key and config is not None and lookup(config, item.config_key) is not None:
            raw, origin = lookup(config, item.config_key), f"{config.source or 'mlci.yaml'}: {item.config_key}"
        elif item.default is not None:
            raw, origin = item.default, "default"
            if config is not None and "{model_name}" in raw:
                raw = raw.format(model_name=config.mlflow.model_name)
        values[item.name] = convert(item, raw, origin)
        sources[item.name] = origin
        if item.required and values[item.name] in (None, ""):
            raise UsageError(
                f"required input {item.name!r} was not given",
                where=f"stage {stage.id}",
                fix=f"pass `{item.name}:` in the action/component inputs, `--{item.name}` to mlci run, "
                f"or set {item.env_var}",
            )
    return StageInputs(stage.id, values, sources)
