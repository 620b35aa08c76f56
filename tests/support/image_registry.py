"""A real image registry (docker-registry on 127.0.0.1) and local base images, for tests.

No Docker Hub here: base images are made locally and pushed to the loopback registry, so
builds pull their base from a registry as they would in production. busybox-static on
`scratch` (buildah, vfs storage, chroot isolation) is enough to test the build mechanics;
the Debian Python base (`mlci image base`, debootstrap, cached per machine) serves a model.
A registry with `users` wants HTTP basic auth (htpasswd, bcrypt), as ECR, GHCR and GitLab do; one
with `tls` speaks HTTPS with a certificate for 127.0.0.1 (`self_signed_certificate`), so clients
that ignore registries.conf's `insecure` (buildah 1.28's login) reach it as they reach a real one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

from mlcicd.delivery.targets.processes import free_port, stop_pid

BUSYBOX = Path("/bin/busybox")
TOOLS = ("buildah", "skopeo", "docker-registry")


def missing_tools(*extra: str) -> list[str]:
    return [t for t in (*TOOLS, *extra) if shutil.which(t) is None] + ([] if BUSYBOX.is_file() else ["busybox-static"])


def buildah(storage: Path, *args: str, driver: str = "vfs", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """buildah on a private storage root. vfs works anywhere; overlay (as root, where the kernel
    allows the mount) shares layers instead of copying the whole tree per layer and container."""
    argv = ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "runroot"),
            "--storage-driver", driver, *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=timeout)


@contextlib.contextmanager
def running_registry(home: Path, users: dict[str, str] | None = None,
                     tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """docker-registry on a free loopback port with filesystem storage; yields host:port; stopped by PID.

    ``tls``: (certificate, key) in PEM; the registry then serves HTTPS only."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, Any] = {"version": 0.1, "log": {"level": "warn"}, "http": {"addr": f"127.0.0.1:{port}"},
                              "storage": {"filesystem": {"rootdirectory": str(home / "data")}}}
    if users:
        import bcrypt

        (home / "htpasswd").write_text("".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
            for user, password in users.items()))
        config["auth"] = {"htpasswd": {"realm": "mlci-test", "path": str(home / "htpasswd")}}
    if tls:
        config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    (home / "config.yml").write_text(yaml.safe_dump(config))
    log = (home / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(home / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/v2/"
                if requests.get(url, timeout=1, verify=str(tls[0]) if tls else True).status_code in (200, 401):
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{(home / 'registry.log').read_text()}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        stop_pid(proc.pid, timeout=10)
        log.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (trust it to trust the server); (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    # An EC key: generated at once even on a starved machine (an RSA key once took over a minute).
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=300)
    return cert, key


@contextlib.contextmanager
def registry_with_busybox(home: Path) -> Iterator[tuple[str, str]]:
    """An open registry holding the busybox base: (host:port, base image reference)."""
    with running_registry(home / "registry") as address:
        yield address, push_busybox_base(address, home / "base")


def push_busybox_base(registry: str, work: Path) -> str:
    """Build busybox on scratch and push it to ``registry``; return its reference."""
    rootfs = work / "ctx" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "tmp").mkdir()
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "echo"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (work / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
    ref = f"{registry}/base/busybox:1"
    buildah(work, "build", "--isolation", "chroot", "--timestamp", "0", "--identity-label=false", "-t", ref,
            str(work / "ctx"))
    buildah(work, "push", "--tls-verify=false", ref, f"docker://{ref}")
    return ref


def push_python_base(registry: str, storage: Path) -> str:
    """The Debian Python base image (debootstrap once per machine, then cached) pushed to ``registry``."""
    from mlcicd.images import base

    env = {**os.environ, "MLCI_BUILDAH_ROOT": str(storage)}
    archive = base.ensure_archive(base.BaseSpec(), base.cache_dir(env), env, lambda line: None)
    pinned = base.publish(archive, base.BaseSpec(), registry, env, lambda line: None, tls_verify=False)
    return pinned


@contextlib.contextmanager
def running_image(storage: Path, image_ref: str, argv: list[str], log_path: Path) -> Iterator[Path]:
    """Run ``argv`` in a container of ``image_ref`` (buildah, chroot isolation: the host's network).

    Yields the log file. The container's processes run in a session of their own, stopped
    through its process group (the leader is the buildah process we started) and then removed.
    """
    container = buildah(storage, "from", "--tls-verify=false", "--pull-always", image_ref).stdout.strip()
    argv_run = ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "runroot"),
                "--storage-driver", "vfs", "run", "--isolation", "chroot", container, "--", *argv]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv_run, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        subprocess.run(["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "runroot"),
                        "--storage-driver", "vfs", "rm", container], capture_output=True, timeout=120)
