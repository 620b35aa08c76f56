"""Plugins: one lookup for both kinds; a third-party plugin is found by its entry point and
owns its settings section, checked like the rest of mlci.yaml."""

import dataclasses

import pytest
from plugin_dist import install_plugin

from mlcicd import plugins
from mlcicd.config import parse_config
from mlcicd.delivery.metrics import open_source
from mlcicd.delivery.targets import open_target
from mlcicd.errors import ConfigError, MlciError
from mlcicd.operations import plugin_lines

MINIMAL = {"data": {"label": "y"}, "mlflow": {"model_name": "m"}}

CONSTANT_SOURCE = '''
from dataclasses import dataclass, field

from mlcicd.plugins import SettingsError


@dataclass
class ConstantSettings:
    value: float
    labels: list[str] = field(default_factory=list)

    def check(self):
        if self.value < 0:
            raise SettingsError("value", f"must not be negative, got {self.value}", "e.g. `value: 1`")


class ConstantSource:
    name = "constant"
    settings_type = ConstantSettings

    def __init__(self, settings):
        self.settings = settings

    def read(self, backend):
        raise NotImplementedError

    def value(self, query, backend):
        return self.settings.value


class NoSettingsTarget:
    name = "nothing"

    def __init__(self, settings, env):
        self.settings, self.env = settings, env
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch, module="mlci_constant_plugin", source=CONSTANT_SOURCE,
                   entry_points={"mlcicd.metrics": {"constant": "mlci_constant_plugin:ConstantSource"},
                                 "mlcicd.targets": {"nothing": "mlci_constant_plugin:NoSettingsTarget"}})


def test_builtins_of_both_kinds():
    assert set(plugins.available(plugins.TARGETS)) >= {"local"}
    assert set(plugins.available(plugins.METRICS)) >= {"scrape", "prometheus"}


@pytest.mark.parametrize(("kind", "where"), [(plugins.TARGETS, "input target / mlci.yaml: deploy.target"),
                                             (plugins.METRICS, "mlci.yaml: deploy.canary.source")])
def test_one_lookup_names_the_key_and_the_choices(kind, where):
    with pytest.raises(plugins.PluginError) as err:
        plugins.get(kind, "nope")
    assert err.value.exit_code == 2 and err.value.where == where
    assert kind.group in str(err.value) and ", ".join(sorted(kind.builtin)) in str(err.value)


def test_an_entry_point_source_is_selected_from_mlci_yaml_with_its_own_settings(third_party):
    cfg = parse_config({**MINIMAL, "deploy": {"canary": {"source": "constant",
                                                         "sources": {"constant": {"value": 2.5}}}}})
    source = open_source(cfg)
    assert type(source).__name__ == "ConstantSource" and source.value("anything", None) == 2.5


@pytest.mark.parametrize(("section", "where", "fix"), [
    ({"value": "high"}, "deploy.canary.sources.constant.value", "number"),
    ({"value": -1}, "deploy.canary.sources.constant.value", "value: 1"),
    ({"valeu": 1}, "deploy.canary.sources.constant.valeu", "did you mean `value`?"),
    ({}, "deploy.canary.sources.constant.value", "under `deploy.canary.sources.constant`"),
])
def test_a_plugin_section_is_checked_like_mlci_yaml(third_party, section, where, fix):
    raw = {**MINIMAL, "deploy": {"canary": {"source": "constant", "sources": {"constant": section}}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "p/mlci.yaml")
    assert str(err.value).startswith(f"p/mlci.yaml: {where}") and fix in str(err.value)


def test_a_selected_plugin_without_a_section_gets_its_defaults_or_a_missing_key_error(third_party):
    cfg = parse_config({**MINIMAL, "deploy": {"canary": {"source": "constant"}}}, "p/mlci.yaml")
    with pytest.raises(ConfigError, match=r"deploy.canary.sources.constant.value: required key missing"):
        open_source(cfg)


def test_a_target_plugin_gets_its_section_and_the_environment_never_the_config(third_party, tmp_path):
    cfg = parse_config({**MINIMAL, "deploy": {"target": "nothing"}})
    cfg.root = tmp_path
    target = open_target(cfg)
    assert target.settings is None  # no settings_type: it takes no settings
    assert target.env.root == tmp_path and target.env.state_dir == tmp_path / ".mlci"
    assert target.env.registry.model_name == "m"
    with pytest.raises(ConfigError, match="takes no settings"):
        parse_config({**MINIMAL, "deploy": {"target": "nothing", "nothing": {"x": 1}}})


def test_status_lists_every_plugin_with_its_keys(third_party):
    cfg = parse_config({**MINIMAL, "deploy": {"local": {"port": 9001}}})
    lines = "\n".join(plugin_lines(cfg))
    assert "deploy target local (selected) [mlcicd.delivery.targets.local:LocalTarget]: deploy.local: port=9001 " \
           "state_dir='.mlci/local'" in lines
    assert "metric source scrape (selected)" in lines and "deploy.canary.sources.prometheus: url=" in lines
    assert "metric source constant [mlci_constant_plugin:ConstantSource]: deploy.canary.sources.constant: " \
           "value=<required> labels=[]" in lines
    assert "deploy target nothing [mlci_constant_plugin:NoSettingsTarget]: deploy.nothing: (no settings)" in lines


def test_setting_keys():
    @dataclasses.dataclass
    class S:
        a: int
        b: list[int] = dataclasses.field(default_factory=lambda: [1])

    assert plugins.setting_keys(S) == [("a", dataclasses.MISSING), ("b", [1])]
    assert plugins.setting_keys(None) == []


ECS_SECTION = {"region": "eu-central-1", "cluster": "ml", "service_name": "credit-risk", "subnets": ["subnet-1"],
               "security_groups": ["sg-1"],
               "listener_arn": "arn:aws:elasticloadbalancing:eu-central-1:123456789012:listener/app/alb/1/2",
               "execution_role_arn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"}


@pytest.mark.parametrize(("cloudwatch", "expected"), [({}, "eu-central-1"), ({"region": "us-east-1"}, "us-east-1")])
def test_cloudwatch_reads_in_the_ecs_targets_region_unless_given_its_own(cloudwatch, expected):
    """A GitLab job with AWS credentials by OIDC alone has no AWS_REGION: the source must not need it."""
    cfg = parse_config({**MINIMAL, "deploy": {"target": "ecs", "ecs": ECS_SECTION, "canary": {
        "source": "cloudwatch", "sources": {"cloudwatch": cloudwatch}}}})
    assert open_source(cfg).cfg.region == expected  # type: ignore[attr-defined]


def test_cloudwatch_read_timeout_reaches_the_client_and_a_bad_one_names_the_key():
    cfg = parse_config({**MINIMAL, "deploy": {"target": "ecs", "ecs": ECS_SECTION, "canary": {
        "source": "cloudwatch", "sources": {"cloudwatch": {"read_timeout": 45}}}}})
    source = open_source(cfg)
    assert source.client.meta.config.read_timeout == 45  # type: ignore[attr-defined]
    bad = {**MINIMAL, "deploy": {"target": "ecs", "ecs": ECS_SECTION, "canary": {
        "source": "cloudwatch", "sources": {"cloudwatch": {"read_timeout": 0}}}}}
    with pytest.raises(MlciError, match="read_timeout"):
        open_source(parse_config(bad))
