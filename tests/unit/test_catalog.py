"""The catalogue is complete and consistent: every stage, input and config key is real."""

import importlib

import pytest

from mlcicd.catalog import STAGE_IDS, STAGES, all_inputs, env_var, get_stage
from mlcicd.config import lookup, parse_config
from mlcicd.errors import UsageError

EXPECTED = ["validate-data", "train", "gate", "build-image", "deploy-canary", "monitor-canary", "promote", "rollback"]


def test_all_eight_stages_in_pipeline_order():
    assert list(STAGE_IDS) == EXPECTED


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_stage_is_well_formed(stage):
    names = [i.name for i in all_inputs(stage)]
    assert len(names) == len(set(names)), "duplicate input names"
    for item in all_inputs(stage):
        assert item.name == item.name.lower() and "_" not in item.name, "inputs are kebab-case"
        assert item.description.endswith("."), item.name
        if item.type == "choice":
            assert item.options
        assert not item.secret, "secrets are never inputs"
    assert stage.outputs
    module = importlib.import_module(stage.module)
    assert callable(module.run)


def test_config_keys_exist():
    cfg = parse_config({"data": {"label": "y"}, "mlflow": {"model_name": "m"}})
    for stage in STAGES:
        for item in all_inputs(stage):
            if item.config_key:
                lookup(cfg, item.config_key)  # raises AttributeError if the key is wrong


def test_env_var_names():
    assert env_var("model-uri") == "MLCI_MODEL_URI"
    assert get_stage("gate").input("model-uri").env_var == "MLCI_MODEL_URI"


def test_unknown_stage_lists_valid_ones():
    with pytest.raises(UsageError, match="validate-data, train"):
        get_stage("deploy")


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_every_stage_declares_the_verdict_the_runner_writes(stage):
    assert "verdict" in [o.name for o in stage.outputs]
