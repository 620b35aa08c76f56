"""mlci.yaml errors name the file, the key path and the fix; defaults fill the rest."""

from pathlib import Path

import pytest

from mlcicd import plugins
from mlcicd.config import load_config, parse_config, store_uri
from mlcicd.errors import ConfigError

MINIMAL = {"data": {"label": "y"}, "mlflow": {"model_name": "m"}}


def test_minimal_config_gets_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.deploy.target == "local" and cfg.deploy.canary.source == "scrape"
    assert cfg.plugin_settings(plugins.TARGETS, "local").port == 8080
    assert cfg.plugin_settings(plugins.METRICS, "prometheus").url == "http://127.0.0.1:9090"
    assert cfg.deploy.canary.weight == 10
    assert cfg.mlflow.tracking_uri == "sqlite:///.mlci/mlflow.db"
    assert cfg.gate.non_inferiority is not None and cfg.gate.non_inferiority.margin == 0.01
    err = cfg.deploy.canary.checks.error_rate
    assert (err.max_ratio_promote, err.margin, err.step_max_ratio, err.step_margin) == (1.5, 0.001, 2.0, 0.005)
    assert cfg.deploy.canary.duration == 1800 and cfg.deploy.canary.last_look == 120


def test_example_config_loads():
    cfg = load_config(Path(__file__).parents[2] / "examples" / "credit-risk" / "mlci.yaml")
    assert cfg.data.label == "default"
    assert cfg.data.sensitive == ["gender"]
    assert cfg.gate.thresholds["accuracy"].min == 0.70
    assert cfg.data.columns["age"].type == "integer"


@pytest.mark.parametrize(
    ("raw", "where", "fix"),
    [
        ({"data": {"label": "y", "senstive": ["g"]}, "mlflow": {"model_name": "m"}}, "data.senstive", "sensitive"),
        ({"data": {"label": "y"}}, "mlflow", "model_name"),
        ({**MINIMAL, "deploy": {"canary": {"weight": "ten"}}}, "deploy.canary.weight", "whole number"),
        ({**MINIMAL, "deploy": {"canary": {"weight": 150}}}, "deploy.canary.weight", "weight: 10"),
        ({**MINIMAL, "image": {"builder": "kaniko"}}, "image.builder", "buildah"),
        ({**MINIMAL, "gate": {"champion": {"accuracy": {"min_absolute_change": -1}}}},
         "gate.champion.accuracy.min_absolute_change", "positive"),
        ({**MINIMAL, "data": {"label": "y", "sensitive": "y"}}, "data.sensitive", "gender"),
        ({**MINIMAL, "deploy": {"canary": {"on_inconclusive": "panic"}}}, "deploy.canary.on_inconclusive", "hold"),
        ({**MINIMAL, "deploy": {"canary": {"steps": [50, 25]}}}, "deploy.canary.steps", "steps: [5, 25, 50, 100]"),
        ({**MINIMAL, "deploy": {"canary": {"steps": [5, 250]}}}, "deploy.canary.steps", "increasing"),
        ({**MINIMAL, "deploy": {"canary": {"max_error_rate_increase": 0.01}}},
         "deploy.canary.max_error_rate_increase", "checks"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"latency": {"quantiles": [99]}}}}},
         "deploy.canary.checks.latency.quantiles", "[0.5, 0.99]"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"error_rate": {"mode": "watch"}}}}},
         "deploy.canary.checks.error_rate.mode", "observe"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"custom": [{"name": "q", "query": "x"}]}}}},
         "deploy.canary.checks.custom[0]", "max: 0.5"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"custom": [{"name": "latency", "query": "x", "max": 1}]}}}},
         "deploy.canary.checks.custom[0].name", "own name"),
        ({**MINIMAL, "deploy": {"canary": {"source": "datadog"}}}, "deploy.canary.source", "prometheus"),
        ({**MINIMAL, "deploy": {"target": "lokal"}}, "deploy.target", "did you mean `local`?"),
        # Plugin sections: each plugin's own settings type checks its section.
        ({**MINIMAL, "deploy": {"local": {"port": 70000}}}, "deploy.local.port", "port: 8080"),
        ({**MINIMAL, "deploy": {"local": {"prot": 1}}}, "deploy.local.prot", "did you mean `port`?"),
        ({**MINIMAL, "deploy": {"local": 8080}}, "deploy.local", "port (an integer)"),
        ({**MINIMAL, "deploy": {"canry": {"weight": 5}}}, "deploy.canry", "did you mean `canary`?"),
        ({**MINIMAL, "deploy": {"canary": {"sources": {"prometheus": {"url": "prometheus:9090"}}}}},
         "deploy.canary.sources.prometheus.url", "url: http://prometheus:9090"),
        ({**MINIMAL, "deploy": {"canary": {"sources": {"scrape": {"timeout": "2s"}}}}},
         "deploy.canary.sources.scrape.timeout", "number"),
        ({**MINIMAL, "deploy": {"canary": {"sources": {"datadog": {}}}}}, "deploy.canary.sources.datadog",
         "install the plugin"),
        ({**MINIMAL, "deploy": {"canary": {"sources": {"cloudwatch": {"period": 45}}}}},
         "deploy.canary.sources.cloudwatch.period", "multiple of 60"),
        ({**MINIMAL, "deploy": {"ecs": {"cluster": "c"}}}, "deploy.ecs.service_name", "required"),
        # The section moved under sources: the error names the new key.
        ({**MINIMAL, "deploy": {"canary": {"prometheus": {"url": "http://p:9090"}}}}, "deploy.canary.prometheus",
         "deploy.canary.sources.prometheus"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"error_rate": {"margin": 1}}}}},
         "deploy.canary.checks.error_rate.margin", "margin: 0.001"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"error_rate": {"max_ratio_promote": 0.9}}}}},
         "deploy.canary.checks.error_rate.max_ratio_promote", "max_ratio_promote: 1.5"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"error_rate": {"max_ratio_promote": 1, "margin": 0}}}}},
         "deploy.canary.checks.error_rate.margin", "margin: 0.001"),
        ({**MINIMAL, "deploy": {"canary": {"checks": {"error_rate": {"step_margin": -0.1}}}}},
         "deploy.canary.checks.error_rate.step_margin", "step_margin: 0.005"),
        ({**MINIMAL, "deploy": {"canary": {"last_look": -5}}}, "deploy.canary.last_look", "last_look: 120"),
        ({**MINIMAL, "deploy": {"canary": {"expected_rps": 0}}}, "deploy.canary.expected_rps", "expected_rps: 50"),
        ({**MINIMAL, "deploy": {"strategy": "bluegreen"}}, "deploy.strategy", "blue-green"),
        ({**MINIMAL, "deploy": {"blue_green": {"keep_seconds": 0}}}, "deploy.blue_green.keep_seconds",
         "keep_seconds: 600"),
        ({**MINIMAL, "deploy": {"blue_green": {"smoke": [{"name": "a", "request": "x"}]}}},
         "deploy.blue_green.smoke[0].request", "dataframe_records"),
        ({**MINIMAL, "deploy": {"blue_green": {"smoke": [{"name": "a", "request": {"inputs": [1]}, "expect": 1}]}}},
         "deploy.blue_green.smoke[0].expect", "expect: [1]"),
        ({**MINIMAL, "deploy": {"blue_green": {"smoke": [{"name": "a", "request": {"inputs": [1]}},
                                                         {"name": "a", "request": {"inputs": [2]}}]}}},
         "deploy.blue_green.smoke[0].name", "its own name"),
    ],
)
def test_bad_config_names_key_and_fix(raw, where, fix):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "proj/mlci.yaml")
    text = str(err.value)
    assert text.startswith(f"proj/mlci.yaml: {where}")
    assert "Fix:" in text and fix in text
    assert err.value.exit_code == 2


def test_sensitive_scalar_is_a_one_item_list():
    cfg = parse_config({"data": {"label": "y", "sensitive": "gender"}, "mlflow": {"model_name": "m"}})
    assert cfg.data.sensitive == ["gender"]


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "mlci.yaml")
    bad = tmp_path / "mlci.yaml"
    bad.write_text("data:\n  label: y\n bad-indent: [\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "not valid YAML (line" in str(err.value)


def test_relative_paths_and_sqlite_uri_resolve_against_config_dir(tmp_path):
    (tmp_path / "mlci.yaml").write_text("data: {label: y, train: d/train.csv}\nmlflow: {model_name: m}\n")
    cfg = load_config(tmp_path / "mlci.yaml")
    assert cfg.path(cfg.data.train) == tmp_path / "d" / "train.csv"
    assert cfg.tracking_uri() == f"sqlite:///{tmp_path}/.mlci/mlflow.db"


def test_plugin_sections_are_built_by_their_plugins():
    cfg = parse_config({**MINIMAL, "deploy": {"local": {"port": 9000},
                                              "canary": {"source": "prometheus",
                                                         "sources": {"prometheus": {"url": "http://p:9090"}}}}})
    assert cfg.plugin_settings(plugins.TARGETS, "local").port == 9000
    prometheus = cfg.plugin_settings(plugins.METRICS, "prometheus")
    assert type(prometheus).__name__ == "PrometheusSettings" and prometheus.url == "http://p:9090"
    assert prometheus.selector == 'instance="{address}"'


def test_store_uri_anchors_relative_sqlite_only(tmp_path):
    assert store_uri("sqlite:///.mlci/mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/.mlci/mlflow.db"
    assert store_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert store_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
