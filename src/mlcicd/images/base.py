"""A Debian-based Python base image made from Debian's own packages, once, then cached.

For machines that cannot pull ``python:3.11-slim`` (no Docker Hub: an air-gapped runner, a
mirror-only network) but can reach a Debian mirror. ``debootstrap --variant=minbase`` with
``python3`` gives a root filesystem (~125 MB; Debian 12 has Python 3.11 and glibc 2.36),
trimmed of apt caches, package lists, docs and locales, then turned into an OCI image with
buildah (``FROM scratch`` + the tree as one layer).

Debootstrap takes one to two minutes, so the result is cached as an OCI archive under
``$MLCI_CACHE_DIR`` (default ``~/.cache/mlcicd``) keyed by everything that goes into it
(suite, mirror, architecture, packages, recipe): a second call returns at once, and a
changed recipe makes a new key instead of reusing a stale image. A file lock lets parallel
callers (test workers, CI jobs on one runner) wait for one build instead of racing.
From the archive the image is loaded into local containers storage (``localhost/…``) or
pushed to a registry, and ``image.base`` names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlcicd.errors import ToolMissingError, UsageError
from mlcicd.images.builders import STORAGE_ROOT_ENV, BuildFailed, Log, StorageBuilder, run_tool

RECIPE = 1  # bump whenever the steps below change what the image holds
DEFAULT_MIRROR = "http://deb.debian.org/debian"
REPOSITORY = "mlci/python"
# Python and glibc of each supported Debian release (image.python / image.platform follow).
SUITES = {"bookworm": ("3.11", "2.36"), "trixie": ("3.13", "2.41")}
DEBOOTSTRAP_TIMEOUT = 1800.0
CACHE_ENV = "MLCI_CACHE_DIR"
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale", "var/log")
_EMPTY_FILES = ("etc/resolv.conf", "etc/hostname")  # the runtime provides them; the builder's must not leak


@dataclass(frozen=True)
class BaseSpec:
    suite: str = "bookworm"
    mirror: str = DEFAULT_MIRROR
    arch: str = ""  # Debian architecture; empty: this machine's
    packages: tuple[str, ...] = ("python3",)
    recipe: int = field(default=RECIPE)

    def resolved(self) -> BaseSpec:
        if self.suite not in SUITES:
            raise UsageError(f"unsupported Debian release {self.suite!r}", where="--debian",
                             fix=f"use one of: {', '.join(SUITES)}")
        return self if self.arch else BaseSpec(self.suite, self.mirror, _dpkg_arch(), self.packages, self.recipe)

    @property
    def python(self) -> str:
        return SUITES[self.suite][0]

    @property
    def platform(self) -> str:
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(self.arch, self.arch)
        return f"manylinux_{SUITES[self.suite][1].replace('.', '_')}_{machine}"

    @property
    def tag(self) -> str:
        return f"{self.python}-{self.suite}"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _dpkg_arch() -> str:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        import platform

        return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def cache_dir(env: Mapping[str, str]) -> Path:
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(xdg) / "mlcicd"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_archive(spec: BaseSpec, cache: Path, env: Mapping[str, str], log: Log) -> Path:
    """The base image as an OCI archive in ``cache``, built now only if it is not there yet."""
    spec = spec.resolved()
    folder = cache / "base"
    archive = folder / f"debian-{spec.suite}-{spec.arch}-{spec.key()}.oci.tar"
    with _locked(folder / f".{spec.key()}.lock"):
        if archive.is_file():
            log(f"base image cached: {archive}")
            return archive
        _check_tools(env)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
        try:
            _build(spec, work, env, log)
            (work / "image.oci.tar").rename(archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return archive


def _check_tools(env: Mapping[str, str]) -> None:
    missing = [t for t in ("debootstrap", "buildah", "tar")
               if shutil.which(t, path=env.get("PATH", os.defpath)) is None]
    if missing:
        raise ToolMissingError(f"making a Debian base image needs {', '.join(missing)}", where="mlci image base",
                               fix=f"apt-get install -y {' '.join(missing)}")
    if os.geteuid() != 0:
        raise UsageError("debootstrap must run as root (it creates device nodes and runs maintainer scripts)",
                         where="mlci image base", fix="run it with sudo, or in a CI job that runs as root")


def _run(argv: list[str], env: Mapping[str, str], log: Log, what: str) -> None:
    code, tail = run_tool(argv, env, log, DEBOOTSTRAP_TIMEOUT)
    if code != 0:
        raise BuildFailed(argv[0], what, code, tail)


def _build(spec: BaseSpec, work: Path, env: Mapping[str, str], log: Log) -> None:
    rootfs = work / "rootfs"
    log(f"debootstrap {spec.suite} ({spec.arch}, minbase + {', '.join(spec.packages)}) from {spec.mirror}")
    _run(["debootstrap", "--variant=minbase", f"--arch={spec.arch}", f"--include={','.join(spec.packages)}",
          spec.suite, str(rootfs), spec.mirror], env, log, "debootstrap")
    for rel in _TRIM:
        for child in (rootfs / rel).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            elif child.name != "lock":
                child.unlink()
    for rel in _EMPTY_FILES:
        (rootfs / rel).unlink(missing_ok=True)
        (rootfs / rel).touch()
    context = work / "context"
    context.mkdir()
    # Sorted, owner-numeric, epoch times: the layer depends on the tree only.
    _run(["tar", "--sort=name", "--numeric-owner", "--mtime=@0", "--exclude=./dev/*", "--exclude=./proc/*",
          "--exclude=./sys/*", "-C", str(rootfs), "-cf", str(context / "rootfs.tar"), "."], env, log, "tar")
    shutil.rmtree(rootfs)
    (context / "Dockerfile").write_text(
        "FROM scratch\nADD rootfs.tar /\n"
        "ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        'CMD ["python3"]\n')
    labels = {"io.mlcicd.base.debian": spec.suite, "io.mlcicd.base.python": spec.python,
              "io.mlcicd.base.platform": spec.platform, "io.mlcicd.base.key": spec.key()}
    storage = {**env, STORAGE_ROOT_ENV: str(work / "storage")}
    buildah = ["buildah", *StorageBuilder().global_args(storage)]
    ref = f"localhost/{REPOSITORY}:{spec.tag}"
    label_args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    _run([*buildah, "build", "--isolation", "chroot", "--timestamp", "0", "--identity-label=false", *label_args,
          "-t", ref, str(context)], storage, log, "build of the base image")
    _run([*buildah, "push", ref, f"oci-archive:{work / 'image.oci.tar'}:{REPOSITORY}:{spec.tag}"], storage, log,
         "export of the base image")


def load(archive: Path, spec: BaseSpec, env: Mapping[str, str], log: Log) -> str:
    """Put the archived image into the builder's local storage; return ``localhost/mlci/python:<tag>``.

    The archive carries that name (see :func:`_build`), so the pull restores it.
    """
    buildah = ["buildah", *StorageBuilder().global_args(env)]
    _run([*buildah, "pull", "--quiet", f"oci-archive:{archive}"], env, log, "load of the base image")
    return f"localhost/{REPOSITORY}:{spec.resolved().tag}"


def publish(archive: Path, spec: BaseSpec, registry: str, env: Mapping[str, str], log: Log, *,
            tls_verify: bool) -> str:
    """Push the archived image to ``registry``; return its reference pinned by digest."""
    local = load(archive, spec, env, log)
    ref = f"{registry.rstrip('/')}/{REPOSITORY}:{spec.resolved().tag}"
    with tempfile.TemporaryDirectory(prefix="mlci-base-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        buildah = ["buildah", *StorageBuilder().global_args(env)]
        _run([*buildah, "push", f"--tls-verify={str(tls_verify).lower()}", "--digestfile", str(digest_file),
              local, f"docker://{ref}"], env, log, "push of the base image")
        digest = digest_file.read_text().strip()
    return f"{ref.rsplit(':', 1)[0]}@{digest}"
