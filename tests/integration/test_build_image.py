"""build-image against real tools: docker-registry on 127.0.0.1, buildah (vfs, chroot), skopeo, pip.

No Docker Hub here. The image that must serve is built on the Debian Python base that
`mlci image base` makes with debootstrap (once per machine, then cached) and pushed to the
loopback registry; the stage resolves the model's requirements with this machine's pip and
installs them offline, and the test runs the built image with `buildah run` and asks it for
predictions. Tests of the build mechanics use a busybox base (`requirements: none`, no
check: busybox has no Python). Every stage run gets its own buildah storage under tmp_path,
so a second build proves reproducibility rather than cache hits.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from image_registry import buildah, missing_tools, push_python_base, registry_with_busybox, running_image
from mlflow_globals import mlflow_uri
from runners import REQUIRED

from mlcicd.ci.local import LocalAdapter
from mlcicd.delivery.metrics.scrape import parse
from mlcicd.delivery.targets.processes import free_port, wait_http_ok
from mlcicd.runner import execute

pytestmark = pytest.mark.integration

MODEL_NAME = "Credit Risk"  # not a valid repository name: the stage must derive `credit-risk`
SHA = "0123456789abcdef0123456789abcdef01234567"
CI_ENV = {"GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "org/demo", "GITHUB_SERVER_URL": "https://github.example"}
FEATURES = ["age", "income", "debt_ratio"]

_missing = missing_tools("debootstrap")
if _missing:
    _why = (f"needs {', '.join(_missing)} (apt-get install -y buildah skopeo docker-registry busybox-static "
            "debootstrap; .ci/run installs them)")
    if REQUIRED:
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory):
    with registry_with_busybox(tmp_path_factory.mktemp("images")) as found:
        yield found


@pytest.fixture(scope="module")
def registry(open_registry):
    return open_registry[0]


@pytest.fixture(scope="module")
def busybox_base(open_registry):
    return open_registry[1]


@pytest.fixture(scope="module")
def python_base(registry, tmp_path_factory):
    started = time.perf_counter()
    ref = push_python_base(registry, tmp_path_factory.mktemp("python-base"))
    print(f"\nDebian Python base ready in {time.perf_counter() - started:.1f} s: {ref}")
    return ref


def _log_model(home: Path, name: str, requirements: list[str] | None):
    """A real sklearn model on named columns with an input example, registered as challenger."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlcicd.registry import Registry
    from mlcicd.tracking import log_model

    uri = f"sqlite:///{home}/mlflow.db"
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((80, 3)), columns=FEATURES)
    model = LogisticRegression().fit(x, (x["age"] + x["debt_ratio"] > 1).astype(int))
    with mlflow_uri(uri):
        # Artifacts under tmp, not ./mlruns of whatever directory pytest runs in.
        mlflow.set_experiment(experiment_id=mlflow.create_experiment(
            "build-image", artifact_location=(home / "artifacts").as_uri()))
        model_uri = log_model(model, input_example=x.head(3), pip_requirements=requirements)
    registry = Registry(uri, name)
    mv = registry.register(model_uri, model_uri.split("/")[1], {})
    registry.set_alias("challenger", mv.version)
    return uri, mv, model


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    """Logged by mlcicd.log_model with its default pinned requirements (scikit-learn, pandas, numpy, skops)."""
    return _log_model(tmp_path_factory.mktemp("mlflow"), MODEL_NAME, None)


def _write_config(root: Path, uri: str, image: dict) -> Path:
    config = {"version": 1, "data": {"label": "y"}, "mlflow": {"model_name": MODEL_NAME, "tracking_uri": uri},
              "image": {"builder": "buildah", **image}}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture
def project(tmp_path, registry, busybox_base, model_store):
    """Build mechanics only: busybox has no Python, so nothing is installed or checked."""
    return _write_config(tmp_path, model_store[0], {"registry": registry, "base": busybox_base,
                                                    "requirements": "none", "check": False})


def _run(project: Path, storage: str = "storage", ci_env: dict[str, str] | None = None, stage: str = "build-image",
         **inputs: str):
    stream = io.StringIO()
    env = {"MLCI_BUILDAH_ROOT": str(project / storage), **CI_ENV, **(ci_env or {})}
    values = {"config": str(project / "mlci.yaml"), "report-dir": str(project / "report"), **inputs}
    start = time.perf_counter()
    code, result = execute(stage, values, env={"MLFLOW_DISABLE_TELEMETRY": "true"},
                           ci=LocalAdapter(env, stream))
    return code, result, stream.getvalue(), time.perf_counter() - start


@pytest.fixture(scope="module")
def served_image(tmp_path_factory, registry, python_base, model_store):
    """The real thing: the model and its requirements on the Debian base, built and pushed once."""
    root = _write_config(tmp_path_factory.mktemp("served"), model_store[0],
                         {"registry": registry, "base": python_base})
    code, result, log, seconds = _run(root)
    assert code == 0, log
    print(f"\nbuild-image with requirements: {seconds:.1f} s total (resolve {result.figures['resolve_seconds']} s, "
          f"build {result.figures['build_seconds']} s, push {result.figures['push_seconds']} s)")
    return root, result, log


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True, timeout=300).stdout


def _layer_members(image_ref: str, dest: Path) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """Copy the image to an OCI layout; every file of every layer, and the text of a few small ones."""
    _skopeo("copy", "--src-tls-verify=false", f"docker://{image_ref}", f"oci:{dest}:img")
    blobs = dest / "blobs" / "sha256"
    index = json.loads((dest / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    members: dict[str, tarfile.TarInfo] = {}
    texts: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1], "r:*") as tar:
            for m in tar.getmembers():
                name = m.name.lstrip("./")
                members[name] = m
                if name in ("opt/mlci/requirements.lock", "opt/mlci/venv/pyvenv.cfg"):
                    texts[name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return members, texts


def test_image_has_the_model_and_its_requirements_under_both_tags(served_image, registry, model_store, tmp_path):
    root, result, log = served_image
    uri, mv, _ = model_store
    out = result.outputs
    assert out["image"] == f"{registry}/credit-risk:v{mv.version}"
    assert out["digest"].startswith("sha256:") and len(out["digest"]) == 71
    assert out["image-ref"] == f"{registry}/credit-risk@{out['digest']}"
    # The model's own requirements, resolved here and installed offline in the image.
    assert "scikit-learn==" in result.evidence["requirements_lock"]
    assert "ml-cicd check: the model loads" in log  # the build loaded the model inside the image

    for tag in (f"v{mv.version}", f"sha-{SHA}"):  # by model version and by git commit, one manifest
        info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{registry}/credit-risk:{tag}"))
        assert info["Digest"] == out["digest"], tag
    labels = info["Labels"]
    assert labels["io.mlcicd.model.name"] == MODEL_NAME and labels["io.mlcicd.model.version"] == mv.version
    assert labels["io.mlcicd.model.run-id"] == mv.run_id
    assert labels["org.opencontainers.image.revision"] == SHA
    assert labels["org.opencontainers.image.source"] == "https://github.example/org/demo"
    assert "org.opencontainers.image.created" not in labels and "io.buildah.version" not in labels

    cfg = json.loads(_skopeo("inspect", "--tls-verify=false", "--config", f"docker://{out['image-ref']}"))["config"]
    assert cfg["User"] == "10001:10001" and "8080/tcp" in cfg["ExposedPorts"]
    assert cfg["Entrypoint"][:3] == ["/opt/mlci/venv/bin/python", "-m", "mlcicd.serving"]
    assert cfg["Entrypoint"][cfg["Entrypoint"].index("--model-name") + 1] == MODEL_NAME

    members, texts = _layer_members(out["image-ref"], tmp_path / "oci")
    assert "opt/ml/model/MLmodel" in members and "opt/ml/model/model.skops" in members
    assert members["opt/ml/model/MLmodel"].mode & 0o777 == 0o644 and members["opt/ml/model/MLmodel"].uid == 0
    site = "opt/mlci/venv/lib/python3.11/site-packages"
    assert f"{site}/sklearn/__init__.py" in members and f"{site}/mlcicd/serving/supervisor.py" in members
    assert f"{site}/mlflow/pyfunc/__init__.py" in members
    # mlflow-skinny serves the model's mlflow pin: no tracking server stack (Flask, SQLAlchemy, ...).
    assert not any(n.startswith((f"{site}/flask/", f"{site}/sqlalchemy/", f"{site}/alembic/")) for n in members)
    assert any(n.startswith(f"{site}/sklearn/__pycache__/") for n in members)  # compiled ahead, hash-based
    assert not any(n.endswith(".whl") for n in members), "wheels must come from a bind mount, not a layer"
    assert not any(n.startswith(f"{site}/pip/") for n in members)
    lock = texts["opt/mlci/requirements.lock"].decode()
    assert lock == result.evidence["requirements_lock"]
    assert "\nmlflow-skinny==" in lock and "\nmlflow==" not in lock
    assert all(" --hash=sha256:" in line for line in lock.splitlines() if not line.startswith("#"))

    from mlflow.tracking import MlflowClient

    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(MODEL_NAME, mv.version).tags
    assert tags["mlci.image.digest"] == out["digest"] and tags["mlci.image"] == out["image-ref"]
    assert (root / "report" / "build-image.json").is_file()


def test_the_image_serves_the_model(served_image, model_store, tmp_path):
    """The built image, run with buildah, answers /invocations with the model's own predictions."""
    import pandas as pd

    _, result, _ = served_image
    _, mv, model = model_store
    storage = tmp_path / "run-storage"
    cfg = json.loads(_skopeo("inspect", "--tls-verify=false", "--config",
                             f"docker://{result.outputs['image-ref']}"))["config"]
    port = free_port()
    argv = list(cfg["Entrypoint"])
    # chroot isolation shares the host's network: loopback and a free port, not 0.0.0.0:8080.
    argv[argv.index("--host") + 1], argv[argv.index("--port") + 1] = "127.0.0.1", str(port)
    with running_image(storage, result.outputs["image-ref"], [*argv, "--workers", "2"], tmp_path / "image.log") as log:
        url = f"http://127.0.0.1:{port}"
        assert wait_http_ok(url + "/ready", 180), log.read_text()
        assert requests.get(url + "/health", timeout=5).status_code == 200
        assert requests.get(url + "/version", timeout=5).json() == {
            "model_name": MODEL_NAME, "model_version": mv.version, "run_id": mv.run_id}
        rows = pd.DataFrame([[0.9, 0.2, 0.4], [0.1, 0.5, 0.2], [0.7, 0.9, 0.8]], columns=FEATURES)
        for _ in range(6):  # fresh connections: both workers answer
            r = requests.post(url + "/invocations", json={"dataframe_split": rows.to_dict(orient="split")},
                              timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == model.predict(rows).tolist()
        metrics = parse(requests.get(url + "/metrics", timeout=5).text)
        assert metrics.requests.get("200") == 6 and sum(metrics.predictions.values()) == 18
        text = log.read_text()
        assert "ready on" in text and "with 2 workers" in text and "Traceback" not in text


def test_the_image_is_deployed_as_an_ecs_task_and_answers_through_the_load_balancer(served_image, model_store,
                                                                                     registry, moto, tmp_path):
    """deploy-canary on `target: ecs` with the built image: the rig's ECS runs the image itself (buildah),
    the ALB routes to it, and it answers with the model's predictions."""
    import pandas as pd
    from alb_data_plane import DataPlane, ImageRuntime
    from aws_rig import AwsInfra
    from ecs_project import use_ecs

    from mlcicd.config import load_config
    from mlcicd.delivery.targets import open_target

    _, result, _ = served_image
    uri, mv, model = model_store
    infra = AwsInfra.create("img")
    plane = DataPlane(infra, tracking_uri=uri, workdir=tmp_path / "aws",
                      images=ImageRuntime(registry, tmp_path / "task-storage")).start()
    root = tmp_path / "project"
    root.mkdir()
    try:
        cfg = yaml.safe_load(_write_config(root, uri, {"registry": registry}).joinpath("mlci.yaml").read_text())
        cfg["deploy"] = {"canary": {}}
        use_ecs(cfg, infra, plane, health_timeout=600)
        (root / "mlci.yaml").write_text(yaml.safe_dump(cfg))
        code, deployed, log, _ = _run(root, stage="deploy-canary", image=result.outputs["image-ref"])
        assert code == 0, log
        assert deployed.outputs["canary-version"] == mv.version
        (task,) = plane.tasks
        assert task.container is not None  # the image ran, not a process of this checkout
        plane.step()  # the rig follows moto every 0.3 s, later under load: catch it up, as an ALB applies at once
        rows = pd.DataFrame([[0.9, 0.2, 0.4], [0.1, 0.5, 0.2], [0.7, 0.9, 0.8]], columns=FEATURES)
        r = requests.post(plane.endpoint + "/invocations", json={"dataframe_split": rows.to_dict(orient="split")},
                          timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Version"] == mv.version
        assert r.json()["predictions"] == model.predict(rows).tolist()
        open_target(load_config(root / "mlci.yaml")).shutdown()
    finally:
        plane.stop()


def test_same_inputs_in_fresh_storage_give_the_same_digest(served_image, tmp_path):
    root, result, _ = served_image
    code, again, log, seconds = _run(root, storage="storage-again")
    assert code == 0, log
    assert again.outputs["digest"] == result.outputs["digest"]
    print(f"build-image again (fresh storage): {seconds:.1f} s, same digest {again.outputs['digest'][:19]}…")


def test_a_requirement_the_model_lacks_fails_the_build(tmp_path, registry, python_base):
    """Logged without skops, the model cannot be loaded in the image: the build's check says so."""
    uri, _, _ = _log_model(tmp_path / "mlflow", MODEL_NAME, ["scikit-learn", "pandas"])
    root = _write_config(tmp_path, uri, {"registry": registry, "base": python_base})
    code, result, log, _ = _run(root, tag="broken")
    assert code == 1, log
    assert "skops" in result.summary and result.checks[-1].name == "build"


def test_build_only_keeps_the_image_local(project, registry):
    code, result, log, _ = _run(project, push="false", tag="local-only")
    assert code == 0, log
    assert result.outputs == {"image": f"{registry}/credit-risk:local-only", "digest": "", "image-ref": ""}
    assert result.figures["image_id"].startswith("sha256:")
    listing = buildah(project / "storage", "images", "--format", "{{.Name}}:{{.Tag}}").stdout
    assert f"{registry}/credit-risk:local-only" in listing
    missing = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry}/credit-risk:local-only"],
                             capture_output=True, text=True)
    assert missing.returncode != 0


def test_failed_install_fails_with_the_builder_output(project):
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    config["image"]["install"] = "echo no-such-package-marker; exit 7"
    (project / "mlci.yaml").write_text(yaml.safe_dump(config))
    code, result, log, _ = _run(project, tag="broken")
    assert code == 1, log
    assert "no-such-package-marker" in result.summary
    assert result.checks[-1].name == "build" and "exit" in result.checks[-1].message


def test_no_builder_is_a_usage_error(project, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    code, result, log, _ = _run(project, ci_env={"PATH": str(empty)}, builder="auto")
    assert code == 2 and result is None
    assert "no image builder found" in log and "apt-get install -y buildah" in log
    assert "buildah" in log and "podman" in log and "docker buildx" in log


def test_push_without_registry_names_the_key(project):
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    del config["image"]["registry"]
    (project / "mlci.yaml").write_text(yaml.safe_dump(config))
    code, result, log, _ = _run(project)
    assert code == 2 and result is None
    assert "image.registry" in log and "input registry" in log and "push: false" in log
