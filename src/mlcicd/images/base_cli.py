"""``mlci image base``: make (or reuse) the Debian Python base image and say how to use it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlcicd.errors import MlciError
from mlcicd.images import base
from mlcicd.images.context import is_loopback


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_base(suite: str, mirror: str | None, registry: str | None, cache_dir: str | None) -> int:
    env = dict(os.environ)
    spec = base.BaseSpec(suite=suite, mirror=mirror or base.DEFAULT_MIRROR)
    try:
        spec = spec.resolved()
        archive = base.ensure_archive(spec, Path(cache_dir) if cache_dir else base.cache_dir(env), env, _log)
        if registry:
            ref = base.publish(archive, spec, registry, env, _log, tls_verify=not is_loopback(registry))
        else:
            ref = base.load(archive, spec, env, _log)
    except MlciError as exc:  # a failed debootstrap/buildah run (exit 1) or a usage error (exit 2)
        _log(f"error: {exc}")
        return exc.exit_code
    print(ref)
    _log(f"use it in mlci.yaml:\n  image:\n    base: {ref}\n    python: \"{spec.python}\"\n"
         f"    platform: {spec.platform}")
    return 0
