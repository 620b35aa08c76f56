"""The catalogue is complete and consistent: every stage, input and config key is real."""

import dataclasses
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


# --- the stage graph: what the renderers wire, checked once here instead of at every render ----------

def graph_problems(stages):
    problems = []
    seen: dict[str, object] = {}
    for stage in stages:
        for need in stage.needs:
            if need not in seen:
                problems.append(f"{stage.id} needs {need!r}, which is not an earlier stage")
        for item in all_inputs(stage):
            if item.fed_by is None:
                continue
            src, out = item.fed_by
            if src not in stage.needs:
                problems.append(f"{stage.id}.{item.name} is fed by {src}, which {stage.id} does not need")
            elif out not in [o.name for o in seen[src].outputs]:
                problems.append(f"{stage.id}.{item.name} is fed by {src}.{out}, which {src} does not output")
        if stage.when == "on_failure" and not all(
                "decision" in [o.name for o in seen[n].outputs] for n in stage.needs if n in seen):
            problems.append(f"{stage.id} runs on failure of a stage without a decision output")
        if stage.approval and not stage.deploys:
            problems.append(f"{stage.id} waits for approval but deploys nothing")
        seen[stage.id] = stage
    return problems


def test_the_stage_graph_is_wired_to_real_stages_and_outputs():
    assert graph_problems(STAGES) == []


def test_the_graph_check_catches_wiring_mistakes():
    gate = get_stage("gate")
    wrong_output = dataclasses.replace(gate, inputs=tuple(
        dataclasses.replace(i, fed_by=("train", "model-url")) if i.name == "model-uri" else i for i in gate.inputs))
    not_needed = dataclasses.replace(gate, needs=("validate-data",))
    later = dataclasses.replace(gate, needs=("train", "promote"))
    for broken, message in ((wrong_output, "train does not output"), (not_needed, "gate does not need"),
                            (later, "not an earlier stage")):
        stages = tuple(broken if s.id == "gate" else s for s in STAGES)
        assert any(message in p for p in graph_problems(stages)), message


def test_graph_facts():
    assert [s.id for s in STAGES if s.deploys] == ["deploy-canary", "promote", "rollback"]
    assert get_stage("rollback").when == "on_failure" and get_stage("promote").approval
    assert get_stage("deploy-canary").input("image").fed_by == ("build-image", "image-ref")
