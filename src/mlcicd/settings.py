"""Typed settings from parsed YAML: a dataclass built from a mapping, checked on the way.

:mod:`mlcicd.config` builds mlci.yaml with it, and every plugin's section is built the same
way from the plugin's own settings type (:func:`plugin_section`), so an error anywhere names
the file, the key path, what was expected and the fix, e.g.
``mlci.yaml: deploy.canary.sources.prometheus.url: 'x' is not an http(s) URL``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlcicd import plugins
from mlcicd.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """Where the YAML came from, and what its errors may suggest."""

    filename: str
    # A whole example file, shown when a top-level key is missing or malformed.
    example: str = ""
    # Keys that moved: old dotted key -> new dotted key.
    moved: Mapping[str, str] = field(default_factory=dict)


TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in TYPE_NAMES:
        return TYPE_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def build(tp: Any, value: Any, src: Source, key: str = "") -> Any:
    """``value`` (parsed YAML at ``key`` of ``src``) as an instance of ``tp``: a dataclass, a list,
    a dict, a Literal, an optional or a scalar; ConfigError naming the key path and the fix."""
    filename = src.filename
    where = f"{filename}: {key or '(top level)'}"
    origin = typing.get_origin(tp)
    if tp is Any:
        return value  # a plugin's section: built by the plugin's settings type (plugin_section)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return build(args[0], value, src, key)
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
        return _build_dataclass(tp, value, src, key)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]  # `sensitive: gender` is a natural shorthand for a one-item list
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {type(value).__name__}", where=where,
                              fix=f"write `{key.rsplit('.', 1)[-1]}: [a, b]`")
        return [build(item_tp, v, src, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", where=where,
                              fix=f"write `{key.rsplit('.', 1)[-1]}:` followed by indented `name: value` lines")
        return {str(k): build(val_tp, v, src, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", where=where, fix="write `true` or `false`")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (tp is int and isinstance(value, float)):
            raise ConfigError(f"expected {describe(tp)}, got {value!r}", where=where,
                              fix=f"write a plain {'whole ' if tp is int else ''}number without quotes")
        return tp(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"expected a string, got {value!r}", where=where, fix="quote the value")
        return str(value)
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - programming error


def _build_dataclass(tp: Any, value: Any, src: Source, key: str) -> Any:
    filename = src.filename
    where = f"{filename}: {key or '(top level)'}"
    hints = typing.get_type_hints(tp)
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {value!r}", where=where, fix=_mapping_fix(tp, hints, src, key))
    fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("internal")}
    # A "rest" field collects every other key (the plugin sections under deploy).
    rest = next((f.name for f in fields.values() if f.metadata.get("rest")), None)
    keys = [name for name in fields if name != rest]
    unknown = [k for k in value if k not in keys]
    for bad in map(str, unknown):
        if join(key, bad) in src.moved:
            raise ConfigError(f"key {bad!r} moved", where=f"{filename}: {join(key, bad)}",
                              fix=f"write it as `{src.moved[join(key, bad)]}`")
    if unknown and rest is None:
        bad = str(unknown[0])
        close = difflib.get_close_matches(bad, keys, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(keys)}"
        raise ConfigError(f"unknown key {bad!r}", where=f"{filename}: {join(key, bad)}", fix=hint)
    kwargs: dict[str, Any] = {}
    if rest is not None:
        kwargs[rest] = {str(k): value[k] for k in unknown}
    for name in keys:
        f = fields[name]
        sub = join(key, name)
        if name in value:
            kwargs[name] = build(hints[name], value[name], src, sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            fix = f"add it, e.g.\n{src.example}" if src.example and "." not in key else \
                f"add `{name}:` ({describe(hints[name])}) under `{key}`"
            raise ConfigError(f"required key missing ({describe(hints[name])})", where=f"{filename}: {sub}", fix=fix)
    return tp(**kwargs)


def _mapping_fix(tp: Any, hints: dict[str, Any], src: Source, key: str) -> str:
    if src.example and "." not in key:
        return "indent the keys below it, e.g.\n" + src.example
    # Deeper down (a plugin's settings): its own keys say more than the example of the whole file.
    return "indent its keys below it: " + ", ".join(f"{f.name} ({describe(hints[f.name])})"
                                                    for f in dataclasses.fields(tp) if f.name in hints)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def plugin_section(kind: plugins.Kind, name: str, raw: Any, src: Source, key: str,
                   siblings: Sequence[str] = ()) -> Any:
    """Plugin ``name``'s section ``raw`` (at ``key``; None for none) built by the plugin's settings
    type and its ``check()``. ``siblings``: other keys beside the section, for "did you mean"."""
    filename = src.filename
    if not plugins.installed(kind, name):
        names = sorted(plugins.available(kind))
        where_known = [*names, *siblings]
        close = difflib.get_close_matches(name, where_known, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        raise ConfigError(f"unknown key {name!r}: no {kind.name} {name!r} is installed", where=f"{filename}: {key}",
                          fix=f"{hint}sections here are for the installed {kind.name}s ({', '.join(names)}); "
                          f"install the plugin that registers {name!r} in `{kind.group}`, or remove the section")
    try:
        tp = plugins.settings_type(kind, name)
    except plugins.PluginError as exc:
        raise ConfigError(exc.what, where=f"{filename}: {key}", fix=exc.fix) from None
    if tp is None:
        if raw:
            raise ConfigError(f"{kind.name} {name!r} takes no settings", where=f"{filename}: {key}",
                              fix="remove the section")
        return None
    settings = build(tp, {} if raw is None else raw, src, key)
    check = getattr(settings, "check", None)
    if callable(check):
        try:
            check()
        except plugins.SettingsError as exc:
            raise ConfigError(exc.what, where=f"{filename}: {join(key, exc.key)}", fix=exc.fix) from None
    return settings
