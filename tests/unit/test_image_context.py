"""Build context, image settings, builder argv and builder selection (the Dockerfile: test_image_dockerfile)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlcicd.errors import EXIT_FAIL, EXIT_USAGE, ToolMissingError, UsageError
from mlcicd.images.builders import (
    BuildFailed,
    BuildRequest,
    DockerBuildxBuilder,
    PodmanBuilder,
    StorageBuilder,
    available_builders,
    run_tool,
    select_builder,
)
from mlcicd.images.context import (
    check_base_image,
    default_repository,
    find_model_dir,
    image_settings,
    oci_labels,
    prepare_context,
    registry_of,
)

NASTY = 'x"; rm -rf / #\nRUN echo pwned $HOME `id`'


@pytest.mark.parametrize(("base", "expected"), [
    ("python:3.11-slim", "docker.io/library/python:3.11-slim"),
    ("myorg/img:1", "docker.io/myorg/img:1"),
    ("ghcr.io/a/b:1", "ghcr.io/a/b:1"),
    ("127.0.0.1:5000/base/busybox:1", "127.0.0.1:5000/base/busybox:1"),
    ("localhost/base", "localhost/base"),
])
def test_docker_hub_short_names_are_written_out(base, expected):
    assert check_base_image(base) == expected


def test_labels_from_github():
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/repo"}
    labels = oci_labels(model_name="m", version="3", run_id="r1", base="b", env=env, revision="abc")
    assert labels["org.opencontainers.image.source"] == "https://github.com/org/repo"
    assert labels["org.opencontainers.image.revision"] == "abc"
    assert labels["io.mlcicd.model.name"] == "m"
    assert labels["io.mlcicd.model.version"] == "3"
    assert labels["io.mlcicd.model.run-id"] == "r1"
    assert "org.opencontainers.image.created" not in labels  # a timestamp would break reproducibility
    assert list(labels) == sorted(labels)


def test_labels_from_gitlab_and_from_nowhere():
    labels = oci_labels(model_name="m", version="3", run_id=None, base="b",
                        env={"CI_PROJECT_URL": "https://gitlab.example/g/p"}, revision=None)
    assert labels["org.opencontainers.image.source"] == "https://gitlab.example/g/p"
    assert "org.opencontainers.image.revision" not in labels
    bare = oci_labels(model_name="m", version="3", run_id=None, base="b", env={}, revision=None)
    assert "org.opencontainers.image.source" not in bare and bare["io.mlcicd.model.run-id"] == ""


def test_settings_default_repository_and_tag():
    s = image_settings(registry="ghcr.io/org", repository=None, tag=None, push=True, model_name="Credit Risk",
                       version="7")
    assert s.ref == "ghcr.io/org/credit-risk:v7"
    assert s.pinned("sha256:" + "a" * 64) == "ghcr.io/org/credit-risk@sha256:" + "a" * 64
    assert s.tls_verify


def test_settings_loopback_registry_skips_tls_verify():
    for reg in ("127.0.0.1:5000", "localhost:5000/team", "[::1]:5000"):
        assert not image_settings(registry=reg, repository="m", tag="t", push=True, model_name="m",
                                  version="1").tls_verify


def test_missing_registry_when_pushing_names_input_and_key():
    with pytest.raises(UsageError) as err:
        image_settings(registry=None, repository=None, tag=None, push=True, model_name="m", version="1")
    text = str(err.value)
    assert "input registry" in text and "image.registry" in text and "push: false" in text
    assert err.value.exit_code == EXIT_USAGE


def test_build_only_without_registry_is_local():
    s = image_settings(registry="", repository=None, tag=None, push=False, model_name="m", version="1")
    assert s.ref == "localhost/m:v1"


@pytest.mark.parametrize(("field", "value", "key"), [
    ("registry", "https://ghcr.io/org", "image.registry"),
    ("registry", "ghcr.io/Org With Space", "image.registry"),
    ("repository", "Credit Risk", "image.repository"),
    ("tag", "-rm", "image.tag"),
    ("tag", "v1 latest", "image.tag"),
])
def test_bad_settings_name_their_key(field, value, key):
    args = {"registry": "ghcr.io/org", "repository": None, "tag": None, field: value}
    with pytest.raises(UsageError, match=key):
        image_settings(**args, push=True, model_name="m", version="1")


def test_default_repository():
    assert default_repository("Credit Risk v2!") == "credit-risk-v2"
    assert default_repository("___") == "model"


def test_registry_of():
    assert registry_of("python:3.11") == "docker.io"
    assert registry_of("library/python") == "docker.io"
    assert registry_of("127.0.0.1:5000/x:1") == "127.0.0.1:5000"
    assert registry_of("localhost/x") == "localhost"


def _fake_model(path: Path, extra: str = "") -> Path:
    model = path / "model"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "model.skops").write_bytes(b"weights" + extra.encode())
    return path


def test_context_is_fresh_normalised_and_fingerprinted(tmp_path):
    src = find_model_dir(_fake_model(tmp_path / "dl"))  # runs:/…/model sources land in a model/ subdir
    assert src.name == "model"
    os.chmod(src / "MLmodel", 0o600)
    first = prepare_context(tmp_path / "a", src, "FROM x\n", {"k": "v"})
    assert (first.model / "MLmodel").stat().st_mode & 0o777 == 0o644
    assert first.dockerfile.read_text() == "FROM x\n" and first.work.is_dir()
    (first.context / "stale.txt").write_text("left over")
    os.utime(src / "MLmodel", (1, 1))
    again = prepare_context(tmp_path / "a", src, "FROM x\n", {"k": "v"})
    assert not (again.context / "stale.txt").exists()
    other = prepare_context(tmp_path / "b", src, "FROM x\n", {})
    assert again.fingerprint() == other.fingerprint()
    changed = prepare_context(tmp_path / "c", find_model_dir(_fake_model(tmp_path / "dl2", "!")), "FROM x\n", {})
    assert changed.fingerprint() != other.fingerprint()


def test_model_without_mlmodel_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="MLmodel"):
        find_model_dir(tmp_path)


def _request(tmp_path: Path, **kw) -> BuildRequest:
    defaults = {"context": tmp_path / "ctx", "dockerfile": tmp_path / "ctx" / "Dockerfile",
                "ref": "127.0.0.1:5000/m:v1", "labels": {"a": "1", "b": NASTY}, "push": True,
                "tls_verify": False, "pull_tls_verify": True, "work": tmp_path / "work", "env": {}}
    return BuildRequest(**{**defaults, **kw})


def test_buildah_argv(tmp_path):
    req = _request(tmp_path, env={"MLCI_BUILDAH_ROOT": "/s"})
    argv = StorageBuilder().build_argv("buildah", req)
    assert argv[:7] == ["buildah", "--root", "/s/root", "--runroot", "/s/runroot", "--storage-driver", "vfs"]
    assert argv[7] == "build" and argv[-1] == str(tmp_path / "ctx")
    assert argv[8:10] == ["--isolation", "chroot"] and argv[10:12] == ["--timestamp", "0"]
    assert "--tls-verify=true" in argv  # the base comes from a verified registry
    assert argv[argv.index("b=" + NASTY) - 1] == "--label"  # one argv element, verbatim
    push = StorageBuilder().push_argv("buildah", req)
    assert "--tls-verify=false" in push and push[-2:] == ["127.0.0.1:5000/m:v1", "docker://127.0.0.1:5000/m:v1"]
    assert "--digestfile" in push


def test_every_tag_is_built_and_pushed(tmp_path):
    req = _request(tmp_path, also=("127.0.0.1:5000/m:sha-abc",))
    argv = StorageBuilder().build_argv("buildah", req)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-t"] == ["127.0.0.1:5000/m:v1", "127.0.0.1:5000/m:sha-abc"]
    push = StorageBuilder().push_argv("buildah", req, "127.0.0.1:5000/m:sha-abc")
    first = StorageBuilder().push_argv("buildah", req)
    assert push[-1] == "docker://127.0.0.1:5000/m:sha-abc"
    assert push[push.index("--digestfile") + 1] != first[first.index("--digestfile") + 1]  # compared afterwards
    buildx = DockerBuildxBuilder().build_argv("docker", req)
    names = '"name=127.0.0.1:5000/m:v1,127.0.0.1:5000/m:sha-abc"'
    assert buildx[buildx.index("--output") + 1].startswith(f"type=image,{names}")
    assert buildx.count("--tag") == 2


def test_storage_builders_use_the_default_storage_without_a_root(tmp_path):
    argv = PodmanBuilder().build_argv("podman", _request(tmp_path))
    assert argv[:2] == ["podman", "build"] and "--storage-driver" not in argv


def test_docker_buildx_argv(tmp_path):
    argv = DockerBuildxBuilder().build_argv("docker", _request(tmp_path))
    out = argv[argv.index("--output") + 1]
    assert out == "type=image,name=127.0.0.1:5000/m:v1,push=true,rewrite-timestamp=true,registry.insecure=true"
    assert "--provenance=false" in argv and "SOURCE_DATE_EPOCH=0" in argv
    secure = DockerBuildxBuilder().build_argv("docker", _request(tmp_path, tls_verify=True))
    assert "insecure" not in secure[secure.index("--output") + 1]
    local = DockerBuildxBuilder().build_argv("docker", _request(tmp_path, push=False))
    assert local[local.index("--output") + 1].startswith("type=docker,")


def _fake_bin(directory: Path, name: str, exit_code: int = 0) -> None:
    directory.mkdir(exist_ok=True)
    exe = directory / name
    exe.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    exe.chmod(0o755)


def test_auto_with_no_builder_says_what_to_install(tmp_path):
    (tmp_path / "bin").mkdir()
    with pytest.raises(ToolMissingError) as err:
        select_builder("auto", {"PATH": str(tmp_path / "bin")})
    text = str(err.value)
    assert "buildah" in text and "podman" in text and "docker buildx" in text
    assert "apt-get install -y buildah" in text
    assert err.value.exit_code == EXIT_USAGE


def test_auto_reports_docker_without_buildx(tmp_path):
    _fake_bin(tmp_path / "bin", "docker", exit_code=1)  # `docker buildx version` fails
    with pytest.raises(ToolMissingError, match="buildx plugin is missing"):
        select_builder("auto", {"PATH": str(tmp_path / "bin")})


def test_auto_prefers_daemonless_builders_in_order(tmp_path):
    bin_dir = tmp_path / "bin"
    _fake_bin(bin_dir, "docker")
    assert select_builder("auto", {"PATH": str(bin_dir)}).name == "docker"
    _fake_bin(bin_dir, "podman")
    assert select_builder(None, {"PATH": str(bin_dir)}).name == "podman"
    _fake_bin(bin_dir, "buildah")
    assert select_builder("auto", {"PATH": str(bin_dir)}).name == "buildah"
    assert available_builders({"PATH": str(bin_dir)}) == ["buildah", "podman", "docker"]
    assert available_builders({"PATH": str(tmp_path)}) == []


def test_explicit_builder_missing_or_unknown(tmp_path):
    with pytest.raises(ToolMissingError, match="apt-get install -y podman"):
        select_builder("podman", {"PATH": str(tmp_path)})
    with pytest.raises(UsageError, match="unknown builder"):
        select_builder("kaniko", {"PATH": str(tmp_path)})


def test_run_tool_keeps_the_last_lines_and_times_out():
    lines: list[str] = []
    code, tail = run_tool([sys.executable, "-c", "for i in range(30): print('line', i)\nraise SystemExit(3)"],
                          dict(os.environ), lines.append, timeout=30)
    assert code == 3 and len(lines) == 30
    assert tail[0] == "line 10" and tail[-1] == "line 29"
    code, tail = run_tool([sys.executable, "-c", "import time; time.sleep(30)"], dict(os.environ),
                          lines.append, timeout=0.3)
    assert code is None and "killed" in tail[-1]


def test_build_failed_is_a_negative_verdict():
    exc = BuildFailed("buildah", "build", 1, ["step 3", "boom"])
    assert exc.exit_code == EXIT_FAIL and "boom" in str(exc) and "exited with 1" in str(exc)
