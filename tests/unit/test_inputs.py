"""Inputs: CLI > MLCI_* env > mlci.yaml > default; typed; empty env means unset."""

import pytest

from mlcicd.catalog import get_stage
from mlcicd.config import parse_config
from mlcicd.errors import UsageError
from mlcicd.inputs import Origin, apply_overrides, resolve_inputs

CFG = parse_config({"data": {"label": "y", "eval": "e.csv"}, "mlflow": {"model_name": "credit"},
                    "deploy": {"canary": {"weight": 15}}})


def test_precedence_cli_env_config_default():
    stage = get_stage("deploy-canary")
    got = resolve_inputs(stage, {}, {}, CFG)
    assert got.canary_weight == 15 and got.sources["canary-weight"].endswith("deploy.canary.weight")
    assert got.model_uri == "models:/credit@challenger"
    got = resolve_inputs(stage, {}, {"MLCI_CANARY_WEIGHT": "30"}, CFG)
    assert got.canary_weight == 30
    got = resolve_inputs(stage, {"canary-weight": "40"}, {"MLCI_CANARY_WEIGHT": "30"}, CFG)
    assert got.canary_weight == 40


def test_empty_env_counts_as_unset():
    got = resolve_inputs(get_stage("deploy-canary"), {}, {"MLCI_CANARY_WEIGHT": ""}, CFG)
    assert got.canary_weight == 15


@pytest.mark.parametrize(
    ("stage", "env", "message"),
    [
        ("deploy-canary", {"MLCI_CANARY_WEIGHT": "ten"}, "MLCI_CANARY_WEIGHT (input 'canary-weight')"),
        ("deploy-canary", {"MLCI_CANARY_WEIGHT": "2.5"}, "whole number"),
        ("gate", {"MLCI_MODEL_URI": "runs:/x/model", "MLCI_REGISTER": "maybe"}, "true or false"),
        ("rollback", {"MLCI_TO": "yesterday"}, "stable, previous-champion"),
        ("gate", {}, "required input 'model-uri'"),
    ],
)
def test_bad_inputs_name_the_input(stage, env, message):
    with pytest.raises(UsageError) as err:
        resolve_inputs(get_stage(stage), {}, env, CFG)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_booleans_and_numbers_are_typed():
    got = resolve_inputs(get_stage("gate"), {}, {"MLCI_MODEL_URI": "runs:/x/model", "MLCI_REGISTER": "FALSE"}, CFG)
    assert got.register is False
    got = resolve_inputs(get_stage("monitor-canary"), {"duration": "12.5"}, {}, CFG)
    assert got.duration == 12.5 and got.min_requests == 200


def test_overrides_reach_the_config():
    cfg = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "credit"}})
    stage = get_stage("deploy-canary")
    got = resolve_inputs(stage, {"model-name": "other"}, {"MLCI_TRACKING_URI": "http://127.0.0.1:5001"}, cfg)
    apply_overrides(stage, got, cfg)
    assert cfg.mlflow.model_name == "other"
    assert cfg.mlflow.tracking_uri == "http://127.0.0.1:5001"
    assert cfg.deploy.canary.weight == 10  # from the config itself: untouched


def test_every_value_knows_where_it_came_from():
    stage = get_stage("deploy-canary")
    got = resolve_inputs(stage, {"target": "local"}, {"MLCI_IMAGE": "reg/x@sha256:1"}, CFG)
    assert got.origins["target"] is Origin.INPUT and got.sources["target"] == "--target"
    assert got.origins["image"] is Origin.ENVIRONMENT and got.sources["image"] == "MLCI_IMAGE"
    assert got.origins["canary-weight"] is Origin.CONFIG and got.sources["canary-weight"] == \
        "mlci.yaml: deploy.canary.weight"
    assert got.origins["model-uri"] is Origin.DEFAULT and got.sources["model-uri"] == "default"
    assert got.given("target") and got.given("image") and not got.given("canary-weight")
    assert not got.given("model-uri")


def test_only_given_inputs_override_the_config():
    cfg = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "credit"},
                        "deploy": {"canary": {"weight": 15}}})
    stage = get_stage("deploy-canary")
    apply_overrides(stage, resolve_inputs(stage, {}, {}, cfg), cfg)
    assert cfg.deploy.canary.weight == 15 and cfg.deploy.target == "local"
    apply_overrides(stage, resolve_inputs(stage, {}, {"MLCI_CANARY_WEIGHT": "30"}, cfg), cfg)
    assert cfg.deploy.canary.weight == 30


def test_a_templated_default_names_the_model_the_run_was_given():
    got = resolve_inputs(get_stage("deploy-canary"), {"model-name": "other"}, {}, CFG)
    assert got.model_uri == "models:/other@challenger"
