"""Operator commands around the stages: what is serving, and stopping it all."""

from __future__ import annotations

import click

from mlcicd.config import load_config
from mlcicd.errors import MlciError


def print_status(config_path: str) -> int:
    try:
        cfg = load_config(config_path)
        from mlcicd.delivery.targets import get_target
        from mlcicd.registry import Registry

        state = get_target(cfg.deploy.target, cfg).state()
        aliases = Registry(cfg.tracking_uri(), cfg.mlflow.model_name, cfg.mlflow.registry_uri).aliases()
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
    return 0


def stop_target(config_path: str) -> int:
    try:
        cfg = load_config(config_path)
        from mlcicd.delivery.targets import get_target

        get_target(cfg.deploy.target, cfg).shutdown()
    except MlciError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    click.echo("stopped the router and every model server")
    return 0
