"""Registry.from_config: the one way to reach a project's registry, from any working directory."""

from mlcicd.config import load_config
from mlcicd.registry import Registry


def _project(tmp_path, mlflow: str):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "mlci.yaml").write_text(f"data: {{label: y}}\nmlflow: {mlflow}\n")
    return load_config(tmp_path / "proj" / "mlci.yaml")


def test_relative_sqlite_is_anchored_at_the_project_root_whatever_the_cwd(tmp_path, monkeypatch):
    cfg = _project(tmp_path, "{model_name: m, tracking_uri: sqlite:///.mlci/mlflow.db, registry_uri: sqlite:///r.db}")
    monkeypatch.chdir(tmp_path)
    registry = Registry.from_config(cfg)
    assert registry.tracking_uri == f"sqlite:///{tmp_path}/proj/.mlci/mlflow.db"
    assert registry.registry_uri == f"sqlite:///{tmp_path}/proj/r.db"
    assert registry.model_name == "m"


def test_the_registry_uri_defaults_to_the_tracking_uri_and_overrides_win(tmp_path):
    cfg = _project(tmp_path, "{model_name: m, tracking_uri: 'http://127.0.0.1:5000'}")
    registry = Registry.from_config(cfg)
    assert registry.registry_uri == registry.tracking_uri == "http://127.0.0.1:5000"
    other = Registry.from_config(cfg, tracking_uri="sqlite:///x.db", model_name="other")
    assert other.tracking_uri == f"sqlite:///{tmp_path}/proj/x.db" and other.model_name == "other"


def test_inputs_given_for_the_run_reach_the_registry_through_the_config(tmp_path):
    cfg = _project(tmp_path, "{model_name: m}")
    cfg.mlflow.model_name, cfg.mlflow.tracking_uri = "given", "sqlite:///given.db"  # what apply_overrides does
    registry = Registry.from_config(cfg)
    assert (registry.model_name, registry.tracking_uri) == ("given", f"sqlite:///{tmp_path}/proj/given.db")


def test_for_model_keeps_the_stores():
    registry = Registry("http://t", "a", "http://r")
    assert registry.for_model("a") is registry
    b = registry.for_model("b")
    assert (b.tracking_uri, b.registry_uri, b.model_name) == ("http://t", "http://r", "b")
