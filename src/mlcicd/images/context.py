"""Build context, references and labels of a model-server image (the Dockerfile: ``dockerfile.py``).

Reproducibility: file modes in the context are normalised (the builders' ``--timestamp 0``
clamps times), and there is no ``created`` label. Safety: references are validated against
the OCI grammar, and labels are handed to the builder as ``--label`` arguments instead of
being written into the Dockerfile.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlcicd.errors import UsageError
from mlcicd.net import is_loopback
from mlcicd.version import BuildInfo, build_info

LOCAL_REGISTRY = "localhost"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
_REGISTRY = re.compile(rf"^{_HOST}(?:/{_COMPONENT})*$")
# Loose on purpose (any registry's naming rules), strict about what matters here: no
# whitespace, quotes, `$` or a leading `-` that a builder would parse as an option.
_BASE_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")

REGISTRY_WHERE = "input registry / mlci.yaml: image.registry"
REPOSITORY_WHERE = "input repository / mlci.yaml: image.repository"
TAG_WHERE = "input tag / mlci.yaml: image.tag"
BASE_WHERE = "input base-image / mlci.yaml: image.base"


def registry_of(ref: str) -> str:
    """Registry host of an image reference: ``127.0.0.1:5000/base:1`` -> ``127.0.0.1:5000``.

    The first path component is a host only when it looks like one (Docker's rule); bare
    names such as ``python:3.11-slim`` or ``library/python`` live on Docker Hub.
    """
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first
    return "docker.io"


def default_repository(model_name: str) -> str:
    """A valid repository from a registered model name (``Credit Risk`` -> ``credit-risk``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")
    return slug or "model"


@dataclass(frozen=True)
class ImageSettings:
    """Where the image goes: ``<registry>/<repository>:<tag>``."""

    registry: str | None
    repository: str
    tag: str
    push: bool

    @property
    def name(self) -> str:
        # Unpushed images without a registry live in local storage; buildah and podman
        # qualify bare names with `localhost/`, so say it explicitly and stay predictable.
        return f"{self.registry or LOCAL_REGISTRY}/{self.repository}"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def pinned(self, digest: str) -> str:
        return f"{self.name}@{digest}"

    @property
    def tls_verify(self) -> bool:
        # Only a loopback registry may be plain HTTP: nothing leaves the machine, and a
        # throwaway local registry (tests, the demo) has no certificate. Any other registry
        # must present a valid certificate; we never turn verification off for it.
        return self.registry is None or not is_loopback(self.registry)


def image_settings(
    *, registry: str | None, repository: str | None, tag: str | None, push: bool, model_name: str, version: str
) -> ImageSettings:
    """Validate the image inputs; each error names the input and the mlci.yaml key."""
    registry = (registry or "").strip() or None
    if registry is not None:
        if "://" in registry:
            raise UsageError(f"registry {registry!r} must not contain a scheme", where=REGISTRY_WHERE,
                             fix=f"write just host[:port][/namespace], e.g. `{registry.split('://', 1)[1]}`")
        registry = registry.rstrip("/")
        if not _REGISTRY.match(registry):
            raise UsageError(f"{registry!r} is not a registry host[:port][/namespace]", where=REGISTRY_WHERE,
                             fix="e.g. `registry: ghcr.io/my-org` or `registry: 127.0.0.1:5000`")
    elif push:
        raise UsageError(
            "no registry to push the image to",
            where=REGISTRY_WHERE,
            fix="set `image: {registry: ghcr.io/<owner>}` in mlci.yaml, pass the input `registry`, "
            "or pass `push: false` to build into local storage only",
        )
    repo = (repository or "").strip() or default_repository(model_name)
    if not _REPOSITORY.match(repo):
        raise UsageError(f"{repo!r} is not a valid image repository", where=REPOSITORY_WHERE,
                         fix=f"use lowercase letters, digits and . _ - / only, e.g. `{default_repository(repo)}`")
    final_tag = (tag or "").strip() or f"v{version}"
    if not _TAG.match(final_tag):
        raise UsageError(f"{final_tag!r} is not a valid image tag", where=TAG_WHERE,
                         fix="use up to 128 letters, digits, _ . - (not starting with . or -), e.g. `v3`")
    return ImageSettings(registry, repo, final_tag, push)


def check_base_image(base: str) -> str:
    """Validate the base image and spell out Docker Hub short names.

    ``python:3.11-slim`` means ``docker.io/library/python:3.11-slim`` to Docker, but buildah
    and podman resolve short names through the host's registries.conf (and refuse to guess
    without a TTY). Writing the name out gives every builder, on every host, the same base.
    """
    base = base.strip()
    if not _BASE_IMAGE.match(base):
        raise UsageError(f"{base!r} is not an image reference", where=BASE_WHERE,
                         fix="e.g. `base: python:3.11-slim` or `base: registry.example.com/ml/python@sha256:…`")
    if registry_of(base) != "docker.io" or base.startswith("docker.io/"):
        return base
    return f"docker.io/{base}" if "/" in base else f"docker.io/library/{base}"


def oci_labels(
    *, model_name: str, version: str, run_id: str | None, base: str, env: Mapping[str, str], revision: str | None,
    server: BuildInfo | None = None,
) -> dict[str, str]:
    """OCI annotations plus ml-cicd's model labels, sorted so the build arguments are stable.

    ``org.opencontainers.image.created`` is left out on purpose: a wall-clock time would make
    every build a new digest, and the registry already records when a tag was pushed.
    ``server``: the ml-cicd the image serves with (default: this one, whose wheel build-image installs).
    """
    server = server or build_info()
    labels = {
        "io.mlcicd.version": server.version,
        "org.opencontainers.image.title": f"{model_name} model server",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.base.name": base,
        "io.mlcicd.model.name": model_name,
        "io.mlcicd.model.version": version,
        "io.mlcicd.model.run-id": run_id or "",
    }
    source = _source_url(env)
    if source:
        labels["org.opencontainers.image.source"] = source
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if server.commit:
        labels["io.mlcicd.commit"] = server.commit
    return dict(sorted(labels.items()))


def _source_url(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server.rstrip('/')}/{env['GITHUB_REPOSITORY']}"
    return env.get("CI_PROJECT_URL", "")


@dataclass(frozen=True)
class BuildContext:
    """A directory with ``Dockerfile`` and ``model/``; ``work`` holds the builder's id/digest files."""

    root: Path
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def context(self) -> Path:
        return self.root / "context"

    @property
    def dockerfile(self) -> Path:
        return self.context / "Dockerfile"

    @property
    def model(self) -> Path:
        return self.context / "model"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def fingerprint(self) -> str:
        """sha256 over every path, mode and content in the context: same input, same context."""
        digest = hashlib.sha256()
        for path in sorted(self.context.rglob("*")):
            rel = path.relative_to(self.context).as_posix()
            digest.update(f"{rel}\0{path.stat().st_mode:o}\0".encode())
            if path.is_file():
                digest.update(path.read_bytes())
        return digest.hexdigest()


def find_model_dir(downloaded: Path) -> Path:
    """The directory holding ``MLmodel``: MLflow puts a ``runs:/…/model`` source under ``model/``."""
    if (downloaded / "MLmodel").is_file():
        return downloaded
    found = sorted(p.parent for p in downloaded.rglob("MLmodel"))
    if not found:
        raise UsageError(f"the downloaded model at {downloaded} has no MLmodel file", where="input model-uri",
                         fix="register a model logged with mlflow (e.g. mlcicd.log_model) and pass its models:/ URI")
    return found[0]


def prepare_context(root: Path, model_src: Path, dockerfile: str, labels: Mapping[str, str],
                    wheels: Path | None = None) -> BuildContext:
    """Fresh context under ``root``: stale files from an earlier build would change the digest.

    ``wheels`` (resolved on the builder) is moved in as ``wheels/``.
    """
    ctx = BuildContext(root, dict(labels))
    shutil.rmtree(ctx.context, ignore_errors=True)
    shutil.rmtree(ctx.work, ignore_errors=True)
    ctx.work.mkdir(parents=True)
    shutil.copytree(model_src, ctx.model, symlinks=False)
    normalise_modes(ctx.model)
    if wheels is not None:
        wheels.rename(ctx.context / "wheels")
    ctx.dockerfile.write_text(dockerfile)
    normalise_modes(ctx.context)
    return ctx


def normalise_modes(top: Path) -> None:
    """0755 dirs, 0644 files: the runner's umask must not change the layer (and the digest).

    Owned by root in the image and world-readable, so the unprivileged server can read the
    model but not modify it.
    """
    os.chmod(top, 0o755)
    for path in top.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
