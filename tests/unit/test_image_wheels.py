"""Which wheels an image gets: the target platform, the model's requirements, ml-cicd's own source."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.errors import UsageError
from mlcicd.images.wheels import (
    WheelTarget,
    image_requirements,
    model_python,
    model_requirements,
    server_source,
    wheel_target,
)


def test_platform_tags_cover_every_older_glibc_and_the_legacy_aliases():
    tags = WheelTarget("3.11", "manylinux_2_28_x86_64").platforms()
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_5_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert WheelTarget("3.11", "manylinux_2_12_aarch64").platforms()[-2:] == ["manylinux1_aarch64",
                                                                             "manylinux2010_aarch64"]
    assert WheelTarget("3.12", "musllinux_1_2_x86_64").platforms() == [
        "musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"]


def test_pip_args_pin_interpreter_abi_and_binary_only():
    args = WheelTarget("3.12", "manylinux_2_17_x86_64").pip_args()
    assert args[:7] == ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312"]
    assert args.count("--platform") == len(WheelTarget("3.12", "manylinux_2_17_x86_64").platforms())


def _model(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_python_comes_from_the_model_then_from_conda(tmp_path):
    (tmp_path / "a").mkdir()
    assert model_python(_model(tmp_path / "a", **{"python_env.yaml": "python: 3.12.4\nbuild_dependencies: []\n"})) \
        == "3.12"
    (tmp_path / "b").mkdir()
    conda = "channels: [conda-forge]\ndependencies:\n- python=3.10.14\n- pip:\n  - mlflow==3.1\n"
    assert model_python(_model(tmp_path / "b", **{"conda.yaml": conda})) == "3.10"
    (tmp_path / "c").mkdir()
    assert model_python(tmp_path / "c") is None


def test_wheel_target_defaults_and_errors(tmp_path):
    _model(tmp_path, **{"python_env.yaml": "python: 3.11.7\n"})
    target = wheel_target(tmp_path, None, None)
    assert target.python == "3.11" and target.platform.startswith("manylinux_2_28_")
    assert wheel_target(tmp_path, "3.13", "manylinux2014_aarch64") == WheelTarget("3.13", "manylinux_2_17_aarch64")
    with pytest.raises(UsageError, match=r"image\.python") as err:
        wheel_target(tmp_path, "3.1", None)  # what YAML makes of an unquoted 3.10
    assert "quoted" in str(err.value)
    with pytest.raises(UsageError, match=r"image\.platform") as err:
        wheel_target(tmp_path, None, "win_amd64")
    assert "manylinux_2_36_x86_64" in str(err.value)


def test_requirements_from_requirements_txt_then_conda(tmp_path):
    (tmp_path / "a").mkdir()
    reqs = "# pinned by mlflow\nmlflow==3.17.2\n\nscikit-learn==1.9.1\n"
    assert model_requirements(_model(tmp_path / "a", **{"requirements.txt": reqs})) == [
        "mlflow==3.17.2", "scikit-learn==1.9.1"]
    (tmp_path / "b").mkdir()
    conda = "dependencies:\n- python=3.11\n- pip:\n  - mlflow==3.17.2\n  - lightgbm==4.5\n"
    assert model_requirements(_model(tmp_path / "b", **{"conda.yaml": conda})) == ["mlflow==3.17.2", "lightgbm==4.5"]
    (tmp_path / "c").mkdir()
    with pytest.raises(UsageError, match="lists no requirements") as err:
        model_requirements(tmp_path / "c")
    assert "requirements: none" in str(err.value)


@pytest.mark.parametrize(("line", "expected"), [
    ("mlflow==3.17.2", "mlflow-skinny==3.17.2"),
    ("mlflow[gateway]>=3,<4", "mlflow-skinny[gateway]>=3,<4"),
    ("MLflow ==3.1 ; python_version>'3.9'", "mlflow-skinny ==3.1 ; python_version>'3.9'"),
    ("mlflow", "mlflow-skinny"),
    ("mlflow-skinny==3.1", "mlflow-skinny==3.1"),
    ("mlflowx==1", "mlflowx==1"),
    ("scikit-learn==1.9", "scikit-learn==1.9"),
])
def test_the_mlflow_pin_is_served_by_the_chosen_package(line, expected):
    assert image_requirements([line], "mlflow-skinny") == [expected]
    assert image_requirements([line], "mlflow") == [line.replace("MLflow", "mlflow") if "MLflow" in line else line]


def test_server_source_is_this_checkout_when_installed_from_one():
    source = server_source({})
    # The test venv has ml-cicd installed from this checkout (`pip install -e .`).
    assert source is not None and (Path(source) / "pyproject.toml").is_file()
    assert (Path(source) / "src" / "mlcicd" / "images" / "wheels.py").is_file()


def test_the_server_wheel_is_rebuilt_as_the_installed_version_and_pinned_to_it(tmp_path, monkeypatch):
    # The source copy has no .git: setuptools-scm is told the installed version and commit, and the
    # image pins ml-cicd to that same version (an editable install's metadata may be older).
    from mlcicd.images import wheels
    from mlcicd.version import BuildInfo

    source = tmp_path / "src"
    (source / "src").mkdir(parents=True)
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    info = BuildInfo("1.2.4.dev3+g0123456", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setattr(wheels, "server_source", lambda env: str(source))
    monkeypatch.setattr(wheels, "build_info", lambda: info)
    monkeypatch.setattr(wheels, "_installed_version", lambda name: "0.0.1")
    calls = []

    class Stop(Exception):
        pass

    def fake_pip(argv, env, log, what, cwd=None):
        calls.append((argv, dict(env)))
        if len(calls) == 2:
            raise Stop

    monkeypatch.setattr(wheels, "_pip", fake_pip)
    with pytest.raises(Stop):
        wheels.resolve(tmp_path / "dest", tmp_path / "work", model, WheelTarget("3.11", "manylinux_2_28_x86_64"),
                       mlflow_package="mlflow-skinny", constraints=None, env={}, log=lambda _: None)
    (build_argv, build_env), _ = calls
    assert "wheel" in build_argv
    assert build_env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_ML_CICD"] == info.version
    assert info.commit in build_env["SETUPTOOLS_SCM_PRETEND_METADATA_FOR_ML_CICD"]
    wanted = (tmp_path / "work" / "requirements.in").read_text().splitlines()
    assert f"ml-cicd[serve]=={info.version}" in wanted
