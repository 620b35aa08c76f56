"""Operator commands around the stages: what is serving, which plugins there are, and stopping it all."""

from __future__ import annotations

import dataclasses

import click

from mlcicd import plugins
from mlcicd.config import Config, load_config, section_key
from mlcicd.delivery.targets import open_target
from mlcicd.errors import EXIT_PASS, MlciError
from mlcicd.registry import Registry


def print_status(config_path: str) -> int:
    try:
        cfg = load_config(config_path)
    except MlciError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    code = _print_deployment(cfg)
    for line in plugin_lines(cfg):
        click.echo(line)
    return code


def _print_deployment(cfg: Config) -> int:
    try:
        state = open_target(cfg).state()
        aliases = Registry.from_config(cfg).aliases()
    except MlciError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    click.echo(f"endpoint: {state.endpoint or '(router not running)'}")
    for backend in (state.stable, state.canary):
        if backend is None:
            continue
        share = state.canary_weight if backend.slot == "canary" else 100 - state.canary_weight
        health = "healthy" if backend.healthy else "NOT HEALTHY"
        click.echo(f"{backend.slot:>6}: v{backend.release.version} {share}% of traffic, {health}, {backend.url}")
    if state.stable is None and state.canary is None:
        click.echo("nothing is deployed")
    click.echo("aliases: " + (", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "(none)"))
    return EXIT_PASS


def plugin_lines(cfg: Config) -> list[str]:
    """Every installed plugin, the section that configures it and its keys with their values here."""
    lines = ["plugins (settings: key=value as this config sets them; <required> has no default):"]
    for kind, selected in ((plugins.TARGETS, cfg.deploy.target), (plugins.METRICS, cfg.deploy.canary.source)):
        for name, spec in sorted(plugins.available(kind).items()):
            mark = " (selected)" if name == selected else ""
            settings = _settings(cfg, kind, name)
            lines.append(f"  {kind.name} {name}{mark} [{spec}]: {section_key(kind, name)}: {settings}")
    return lines


def _settings(cfg: Config, kind: plugins.Kind, name: str) -> str:
    try:
        keys = plugins.setting_keys(plugins.settings_type(kind, name))
    except plugins.PluginError as exc:
        return f"cannot be loaded: {exc.what}"
    if not keys:
        return "(no settings)"
    try:
        values = dataclasses.asdict(cfg.plugin_settings(kind, name))
    except MlciError:
        values = {}  # a required key is not set: show the keys and their defaults
    shown = {key: values.get(key, default) for key, default in keys}
    return " ".join(f"{key}={'<required>' if value is dataclasses.MISSING else repr(value)}"
                    for key, value in shown.items())


def stop_target(config_path: str) -> int:
    try:
        open_target(load_config(config_path)).shutdown()
    except MlciError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    click.echo("stopped the router and every model server")
    return EXIT_PASS
