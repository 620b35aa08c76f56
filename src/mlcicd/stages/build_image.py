"""build-image: bake a registered model into a model-server image, push it, report its digest.

Flow: check the image settings, find a builder and the registry credentials (cheap, so
typos and missing tokens fail before any download), resolve the model URI in the
registry, download the model, resolve the wheels the image needs on this runner
(``images/wheels.py``: the model's own requirements plus the server), render the
Dockerfile, build with ``--timestamp 0`` (same model, wheels and settings -> same
digest), log in with a temporary auth file, push under the main tag (default
``v<version>``) and ``sha-<git commit>``, and record the pinned reference on the model
version (tags ``mlci.image``, ``mlci.image.digest``) so deploy stages and humans can find it.

With ``push: false`` the image stays in the builder's local storage: the ``image`` output
names it, ``digest`` and ``image-ref`` are empty (a manifest digest exists only once a
registry stores the manifest; the local image id is a different hash and cannot be pulled
by), the id is reported in the figures, and no registry tags are written, because nothing
another machine can pull exists yet. A failed resolution, build or push is a failed
verdict (exit 1) whose report carries the tool's last lines, like a failed training command.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from mlcicd.errors import UsageError
from mlcicd.images import login, wheels
from mlcicd.images.builders import BuildFailed, BuildOutcome, BuildRequest, select_builder
from mlcicd.images.context import (
    ImageSettings,
    check_base_image,
    find_model_dir,
    image_settings,
    oci_labels,
    prepare_context,
    registry_of,
)
from mlcicd.images.dockerfile import Packages, check_command, entrypoint, render_dockerfile, server_python
from mlcicd.lineage import git_revision
from mlcicd.net import is_loopback
from mlcicd.registry import ModelVersion, Registry
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext

STAGE = "build-image"
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_DISTRIBUTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NO_OUTPUTS = {"image": "", "digest": "", "image-ref": ""}


def _download(registry: Registry, mv: ModelVersion, dst: Path) -> Path:
    """The version's model files, as a directory holding ``MLmodel``."""
    shutil.rmtree(dst, ignore_errors=True)
    return find_model_dir(registry.download(mv.version, dst))


def _dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _constraints(ctx: StageContext) -> Path | None:
    path = ctx.config.path(ctx.config.image.constraints)
    if path is not None and not path.is_file():
        raise UsageError(f"constraints file {path} does not exist", where="mlci.yaml: image.constraints",
                         fix="point it at a pip constraints file (e.g. `pip freeze > constraints.txt` in the "
                         "training environment), relative to mlci.yaml, or remove the key")
    return path


def _failed(what: str, exc: BuildFailed, checks: list[Check], figures: dict[str, object],
            evidence: dict[str, object]) -> StageResult:
    checks.append(Check(what, Status.FAIL, str(exc)))
    tail = "\n".join(exc.tail)
    return StageResult(STAGE, Verdict.FAIL, f"{exc.builder} {exc.step} failed:\n\n```\n{tail}\n```",
                       checks=checks, outputs=dict(NO_OUTPUTS), figures=figures, evidence=evidence)


def run(ctx: StageContext) -> StageResult:
    values, image_cfg = ctx.inputs.values, ctx.config.image
    # The CI adapter's environment wins (it is os.environ in real runs; tests pass their own).
    env = {**os.environ, **ctx.ci.env}
    model_name = ctx.config.mlflow.model_name
    model_uri = str(values.get("model-uri") or f"models:/{model_name}@challenger")
    push = image_cfg.push if values.get("push") is None else bool(values["push"])
    base = check_base_image(str(values.get("base-image") or image_cfg.base))

    def settings_for(version: str) -> ImageSettings:
        return image_settings(registry=values.get("registry"), repository=values.get("repository"),
                              tag=values.get("tag"), push=push, model_name=model_name, version=version)

    # Everything that can fail on a typo or a missing token, before any download.
    draft = settings_for("0")
    builder = select_builder(values.get("builder") or image_cfg.builder, env)
    creds = login.credentials(image_cfg.login, draft.registry, env) if push and draft.registry else None
    constraints = _constraints(ctx)
    if not _DISTRIBUTION.match(image_cfg.mlflow_package):
        raise UsageError(f"{image_cfg.mlflow_package!r} is not a package name", where="mlci.yaml: image.mlflow_package",
                         fix="use `mlflow-skinny` (default) or `mlflow`")

    started = time.perf_counter()
    registry = Registry.from_config(ctx.config)
    mv = registry.resolve(model_uri)
    settings = settings_for(mv.version)
    build_root = ctx.config.state_dir / "build" / settings.repository / mv.version
    download_dir = build_root / "download"
    model_dir = _download(registry, mv, download_dir)
    commit = git_revision(ctx.config.root, env).get("git.commit")
    labels = oci_labels(model_name=mv.name, version=mv.version, run_id=mv.run_id, base=base, env=env,
                        revision=commit)
    also = (f"{settings.name}:sha-{commit}",) if commit and _COMMIT.match(commit) else ()
    n_files, n_bytes = _dir_size(model_dir)
    figures: dict[str, object] = {"download_seconds": round(time.perf_counter() - started, 3),
                                  "model_files": n_files, "model_bytes": n_bytes, "builder": builder.name}
    evidence: dict[str, object] = {"model_uri": model_uri, "model_version": mv.version, "base_image": base,
                                   "labels": labels, "tags": [settings.ref, *also]}
    checks = [Check("builder", Status.PASS, f"{builder.name} selected", observed=builder.name,
                    expected=str(values.get("builder") or image_cfg.builder))]

    packages, wheel_dir = None, None
    if image_cfg.requirements == "model":
        target = wheels.wheel_target(model_dir, image_cfg.python, image_cfg.platform)
        wheel_dir = build_root / "wheels"
        resolving = time.perf_counter()
        try:
            resolved = wheels.resolve(wheel_dir, build_root / "pip", model_dir, target,
                                      mlflow_package=image_cfg.mlflow_package, constraints=constraints, env=env,
                                      log=ctx.ci.log)
        except BuildFailed as exc:
            return _failed("requirements", exc, checks, figures, evidence)
        packages = Packages(target.python, resolved.pip_wheel)
        figures["resolve_seconds"] = round(time.perf_counter() - resolving, 3)
        figures["wheels"] = len(resolved.packages)
        evidence["requirements_lock"] = resolved.lock
        shown = ", ".join(f"{n}=={v}" for n, v in resolved.packages.items()
                          if n in {"ml-cicd", image_cfg.mlflow_package, "scikit-learn"})
        checks.append(Check("requirements", Status.PASS,
                            f"{len(resolved.packages)} wheels for CPython {target.python} on {target.platform} "
                            f"({shown}, ...)", observed=str(len(resolved.packages))))
    python = server_python(packages)
    dockerfile = render_dockerfile(base=base, install=image_cfg.install,
                                   entry=entrypoint(mv.name, mv.version, mv.run_id, python), packages=packages,
                                   check=check_command(python) if image_cfg.check else None)
    context = prepare_context(build_root, model_dir, dockerfile, labels, wheels=wheel_dir)
    shutil.rmtree(download_dir, ignore_errors=True)
    fingerprint = context.fingerprint()
    evidence.update(dockerfile=dockerfile, context_sha256=fingerprint)
    checks.append(Check("context", Status.PASS, f"model v{mv.version} ({n_files} files, {n_bytes} bytes) in "
                        f"{context.context}", observed=fingerprint[:12]))

    with login.logged_in(creds, builder.name, tls_verify=settings.tls_verify, env=env) as auth_env:
        if creds is not None:
            checks.append(Check("login", Status.PASS, f"logged in to {creds.registry} with {creds.source}"))
        request = BuildRequest(
            context=context.context, dockerfile=context.dockerfile, ref=settings.ref, labels=labels, push=push,
            tls_verify=settings.tls_verify, pull_tls_verify=not is_loopback(registry_of(base)),
            work=context.work, env={**env, **auth_env}, also=also,
        )
        ctx.ci.log(f"building {settings.ref} from {base} with {builder.name}")
        try:
            outcome = builder.build(request, ctx.ci.log)
        except BuildFailed as exc:
            return _failed(exc.step.replace(" ", "-"), exc, checks, figures, evidence)
    return _passed(ctx, registry, mv, settings, also, outcome, checks, figures, evidence)


def _passed(
    ctx: StageContext, registry: Registry, mv: ModelVersion, settings: ImageSettings, also: tuple[str, ...],
    outcome: BuildOutcome, checks: list[Check], figures: dict[str, object], evidence: dict[str, object],
) -> StageResult:
    ref = settings.ref
    figures.update(build_seconds=round(outcome.build_seconds, 3), push_seconds=round(outcome.push_seconds, 3),
                   image_id=outcome.image_id)
    checks.append(Check("build", Status.PASS, f"built {ref}", observed=f"{outcome.build_seconds:.1f} s"))
    if not outcome.digest:
        checks.append(Check("push", Status.SKIP, "push: false; the image is in local storage only"))
        return StageResult(
            STAGE, Verdict.PASS, f"built {ref} (image id {outcome.image_id}); not pushed",
            checks=checks, outputs={"image": ref, "digest": "", "image-ref": ""}, figures=figures, evidence=evidence,
        )
    pinned = settings.pinned(outcome.digest)
    tags_pushed = ", ".join(r.rsplit(":", 1)[1] for r in (ref, *also))
    checks.append(Check("push", Status.PASS, f"pushed {pinned} as {tags_pushed}",
                        observed=f"{outcome.push_seconds:.1f} s"))
    tags = {"mlci.image": pinned, "mlci.image.digest": outcome.digest, "mlci.image.tag": ref}
    registry.set_tags(mv.version, tags)
    checks.append(Check("evidence", Status.PASS, f"tags {', '.join(tags)} set on {mv.name} v{mv.version}"))
    evidence["registry_tags"] = tags
    return StageResult(
        STAGE, Verdict.PASS, f"model {mv.name} v{mv.version} baked into {pinned} (tags {tags_pushed})",
        checks=checks, outputs={"image": ref, "digest": outcome.digest, "image-ref": pinned},
        figures=figures, evidence=evidence,
    )
