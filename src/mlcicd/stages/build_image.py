"""build-image: bake a registered model into a model-server image, push it, report its digest.

Flow: check the image settings and find a builder (cheap, so typos fail before any
download), resolve the model URI in the registry, download the model into a fresh build
context under ``.mlci/build/``, render the Dockerfile, build with ``--timestamp 0`` (same
model and settings -> same digest), push, and record the pinned reference on the model
version (tags ``mlci.image``, ``mlci.image.digest``) so deploy stages and humans can find it.

With ``push: false`` the image stays in the builder's local storage: the ``image`` output
names it, ``digest`` and ``image-ref`` are empty (a manifest digest exists only once a
registry stores the manifest; the local image id is a different hash and cannot be pulled
by), the id is reported in the figures, and no registry tags are written, because nothing
another machine can pull exists yet. A failed build or push is a failed verdict (exit 1)
whose report carries the builder's last lines, like a failed training command.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from mlcicd.images.builders import BuildFailed, BuildOutcome, BuildRequest, select_builder
from mlcicd.images.context import (
    ImageSettings,
    check_base_image,
    entrypoint,
    find_model_dir,
    image_settings,
    oci_labels,
    prepare_context,
    registry_of,
    render_dockerfile,
)
from mlcicd.lineage import git_revision
from mlcicd.net import is_loopback
from mlcicd.registry import ModelVersion, Registry
from mlcicd.report import Check, StageResult, Status, Verdict
from mlcicd.stages import StageContext

STAGE = "build-image"


def _download(registry: Registry, mv: ModelVersion, dst: Path) -> Path:
    """The version's model files, as a directory holding ``MLmodel``."""
    shutil.rmtree(dst, ignore_errors=True)
    return find_model_dir(registry.download(mv.version, dst))


def _dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


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

    settings_for("0")  # fail on a typo or a missing registry before any download
    builder = select_builder(values.get("builder") or image_cfg.builder, env)

    started = time.perf_counter()
    registry = Registry.from_config(ctx.config)
    mv = registry.resolve(model_uri)
    settings = settings_for(mv.version)
    build_root = ctx.config.state_dir / "build" / settings.repository / mv.version
    download_dir = build_root / "download"
    model_dir = _download(registry, mv, download_dir)
    labels = oci_labels(model_name=mv.name, version=mv.version, run_id=mv.run_id, base=base, env=env,
                        revision=git_revision(ctx.config.root, env).get("git.commit"))
    dockerfile = render_dockerfile(base=base, install=image_cfg.install,
                                   entry=entrypoint(mv.name, mv.version, mv.run_id))
    context = prepare_context(build_root, model_dir, dockerfile, labels)
    shutil.rmtree(download_dir, ignore_errors=True)
    n_files, n_bytes = _dir_size(context.model)
    download_seconds = time.perf_counter() - started
    fingerprint = context.fingerprint()

    checks = [
        Check("builder", Status.PASS, f"{builder.name} selected", observed=builder.name,
              expected=str(values.get("builder") or image_cfg.builder)),
        Check("context", Status.PASS, f"model v{mv.version} ({n_files} files, {n_bytes} bytes) in {context.context}",
              observed=fingerprint[:12]),
    ]
    request = BuildRequest(
        context=context.context, dockerfile=context.dockerfile, ref=settings.ref, labels=labels, push=push,
        tls_verify=settings.tls_verify, pull_tls_verify=not is_loopback(registry_of(base)),
        work=context.work, env=env,
    )
    ctx.ci.log(f"building {settings.ref} from {base} with {builder.name}")
    figures: dict[str, object] = {"download_seconds": round(download_seconds, 3), "model_files": n_files,
                                  "model_bytes": n_bytes, "builder": builder.name}
    evidence: dict[str, object] = {"model_uri": model_uri, "model_version": mv.version, "base_image": base,
                                   "labels": labels, "dockerfile": dockerfile,
                                   "context_sha256": fingerprint}
    try:
        outcome = builder.build(request, ctx.ci.log)
    except BuildFailed as exc:
        checks.append(Check(exc.step.replace(" ", "-"), Status.FAIL, str(exc)))
        tail = "\n".join(exc.tail)
        return StageResult(
            STAGE, Verdict.FAIL, f"{builder.name} {exc.step} of {settings.ref} failed:\n\n```\n{tail}\n```",
            checks=checks, outputs={"image": "", "digest": "", "image-ref": ""}, figures=figures, evidence=evidence,
        )
    return _passed(ctx, registry, mv, settings.ref, settings.pinned(outcome.digest) if outcome.digest else "",
                   outcome, checks, figures, evidence)


def _passed(
    ctx: StageContext, registry: Registry, mv: ModelVersion, ref: str, pinned: str, outcome: BuildOutcome,
    checks: list[Check], figures: dict[str, object], evidence: dict[str, object],
) -> StageResult:
    figures.update(build_seconds=round(outcome.build_seconds, 3), push_seconds=round(outcome.push_seconds, 3),
                   image_id=outcome.image_id)
    checks.append(Check("build", Status.PASS, f"built {ref}", observed=f"{outcome.build_seconds:.1f} s"))
    if not outcome.digest:
        checks.append(Check("push", Status.SKIP, "push: false; the image is in local storage only"))
        return StageResult(
            STAGE, Verdict.PASS, f"built {ref} (image id {outcome.image_id}); not pushed",
            checks=checks, outputs={"image": ref, "digest": "", "image-ref": ""}, figures=figures, evidence=evidence,
        )
    checks.append(Check("push", Status.PASS, f"pushed {pinned}", observed=f"{outcome.push_seconds:.1f} s"))
    tags = {"mlci.image": pinned, "mlci.image.digest": outcome.digest, "mlci.image.tag": ref}
    registry.set_tags(mv.version, tags)
    checks.append(Check("evidence", Status.PASS, f"tags {', '.join(tags)} set on {mv.name} v{mv.version}"))
    evidence["registry_tags"] = tags
    return StageResult(
        STAGE, Verdict.PASS, f"model {mv.name} v{mv.version} baked into {pinned}",
        checks=checks, outputs={"image": ref, "digest": outcome.digest, "image-ref": pinned},
        figures=figures, evidence=evidence,
    )
