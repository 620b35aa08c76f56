"""build-image against real tools: docker-registry on 127.0.0.1, buildah (vfs, chroot), skopeo.

No Docker Hub here: the base image is busybox-static on `scratch`, pushed to the local
registry, so the stage also pulls its base from a loopback registry. `image.install` is
empty because that base has no python. Every stage run gets its own buildah storage
under tmp_path, so a second build proves reproducibility rather than cache hits.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from image_registry import missing_tools, push_busybox_base, running_registry
from mlflow_globals import mlflow_uri
from runners import REQUIRED

from mlcicd.ci.local import LocalAdapter
from mlcicd.runner import execute

pytestmark = pytest.mark.integration

MODEL_NAME = "Credit Risk"  # not a valid repository name: the stage must derive `credit-risk`
SHA = "0123456789abcdef0123456789abcdef01234567"
CI_ENV = {"GITHUB_SHA": SHA, "GITHUB_REPOSITORY": "org/demo", "GITHUB_SERVER_URL": "https://github.example"}

_missing = missing_tools()
if _missing:
    _why = (f"needs {', '.join(_missing)} (apt-get install -y buildah skopeo docker-registry busybox-static; "
            ".ci/run installs them)")
    if REQUIRED:
        pytest.fail(_why, pytrace=False)
    pytest.skip(_why, allow_module_level=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def base_image(registry, tmp_path_factory):
    return push_busybox_base(registry, tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    """A real sklearn model logged and registered (alias challenger) in a SQLite store."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlcicd.registry import Registry
    from mlcicd.tracking import log_model

    home = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{home}/mlflow.db"
    with mlflow_uri(uri):
        # Artifacts under tmp, not ./mlruns of whatever directory pytest runs in.
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("build-image",
                                                                      artifact_location=(home / "artifacts").as_uri()))
        rng = np.random.default_rng(0)
        x = rng.random((60, 3))
        model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
        model_uri = log_model(model, pip_requirements=["scikit-learn"])
    registry = Registry(uri, MODEL_NAME)
    mv = registry.register(model_uri, model_uri.split("/")[1], {})
    registry.set_alias("challenger", mv.version)
    return uri, mv


@pytest.fixture
def project(tmp_path, registry, base_image, model_store):
    uri, _ = model_store
    config = {"version": 1, "data": {"label": "y"}, "mlflow": {"model_name": MODEL_NAME, "tracking_uri": uri},
              "image": {"registry": registry, "base": base_image, "install": "", "builder": "buildah"}}
    (tmp_path / "mlci.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _run(project: Path, storage: str = "storage", ci_env: dict[str, str] | None = None, **inputs: str):
    stream = io.StringIO()
    env = {"MLCI_BUILDAH_ROOT": str(project / storage), **CI_ENV, **(ci_env or {})}
    values = {"config": str(project / "mlci.yaml"), "report-dir": str(project / "report"), **inputs}
    start = time.perf_counter()
    code, result = execute("build-image", values, env={"MLFLOW_DISABLE_TELEMETRY": "true"},
                           ci=LocalAdapter(env, stream))
    return code, result, stream.getvalue(), time.perf_counter() - start


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def _layer_members(image_ref: str, dest: Path) -> dict[str, tarfile.TarInfo]:
    """Copy the image to an OCI layout and list every file of every layer."""
    _skopeo("copy", "--src-tls-verify=false", f"docker://{image_ref}", f"oci:{dest}:img")
    blobs = dest / "blobs" / "sha256"
    index = json.loads((dest / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    members: dict[str, tarfile.TarInfo] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1], "r:*") as tar:
            members.update({m.name.lstrip("./"): m for m in tar.getmembers()})
    return members


def test_builds_pushes_and_records_a_reproducible_image(project, registry, model_store, tmp_path):
    _, mv = model_store
    stray_db = Path.cwd() / "mlflow.db"  # where MLflow's default registry URI would point
    had_stray_db = stray_db.exists()
    code, result, log, seconds = _run(project)
    assert code == 0, log
    assert stray_db.exists() == had_stray_db
    out = result.outputs
    assert out["image"] == f"{registry}/credit-risk:v{mv.version}"
    assert out["digest"].startswith("sha256:") and len(out["digest"]) == 71
    assert out["image-ref"] == f"{registry}/credit-risk@{out['digest']}"
    print(f"\nbuild-image: {seconds:.2f} s total, build {result.figures['build_seconds']} s, "
          f"push {result.figures['push_seconds']} s, download {result.figures['download_seconds']} s")

    info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{out['image']}"))
    assert info["Digest"] == out["digest"]
    labels = info["Labels"]
    assert labels["io.mlcicd.model.name"] == MODEL_NAME
    assert labels["io.mlcicd.model.version"] == mv.version
    assert labels["io.mlcicd.model.run-id"] == mv.run_id
    assert labels["org.opencontainers.image.revision"] == SHA
    assert labels["org.opencontainers.image.source"] == "https://github.example/org/demo"
    assert "org.opencontainers.image.created" not in labels
    assert "io.buildah.version" not in labels  # the digest must not depend on the builder's version

    config = json.loads(_skopeo("inspect", "--tls-verify=false", "--config", f"docker://{out['image-ref']}"))
    cfg = config["config"]
    assert cfg["User"] == "10001:10001"
    assert "8080/tcp" in cfg["ExposedPorts"]
    assert cfg["Entrypoint"][:3] == ["python", "-m", "mlcicd.serving"]
    assert cfg["Entrypoint"][cfg["Entrypoint"].index("--model-name") + 1] == MODEL_NAME
    assert "Healthcheck" not in cfg

    members = _layer_members(out["image-ref"], tmp_path / "oci")
    assert "opt/ml/model/MLmodel" in members and "opt/ml/model/model.skops" in members
    assert members["opt/ml/model/MLmodel"].mode & 0o777 == 0o644 and members["opt/ml/model/MLmodel"].uid == 0
    assert "bin/busybox" in members  # the base layer is there too

    from mlflow.tracking import MlflowClient

    uri, _ = model_store
    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(MODEL_NAME, mv.version).tags
    assert tags["mlci.image.digest"] == out["digest"]
    assert tags["mlci.image"] == out["image-ref"]
    assert (project / "report" / "build-image.json").is_file()

    # Fresh storage, fresh context, same inputs: the same manifest digest.
    code2, result2, log2, seconds2 = _run(project, storage="storage-2")
    assert code2 == 0, log2
    assert result2.outputs["digest"] == out["digest"]
    print(f"build-image again (fresh storage): {seconds2:.2f} s, same digest {out['digest'][:19]}…")


def test_build_only_keeps_the_image_local(project, registry):
    code, result, log, _ = _run(project, push="false", tag="local-only")
    assert code == 0, log
    assert result.outputs == {"image": f"{registry}/credit-risk:local-only", "digest": "", "image-ref": ""}
    assert result.figures["image_id"].startswith("sha256:")
    listing = subprocess.run(
        ["buildah", "--root", str(project / "storage" / "root"), "--runroot", str(project / "storage" / "runroot"),
         "--storage-driver", "vfs", "images", "--format", "{{.Name}}:{{.Tag}}"],
        capture_output=True, text=True, check=True).stdout
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
