"""A real image registry (docker-registry on 127.0.0.1) and a local base image, for tests.

No Docker Hub here: the base image is busybox-static on `scratch`, built with buildah (vfs
storage, chroot isolation) and pushed to the loopback registry, so builds pull their base
from a registry as they would in production.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

from mlcicd.delivery.targets.processes import free_port

BUSYBOX = Path("/bin/busybox")
TOOLS = ("buildah", "skopeo", "docker-registry")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None] + ([] if BUSYBOX.is_file() else ["busybox-static"])


def buildah(storage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "runroot"),
            "--storage-driver", "vfs", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)


@contextlib.contextmanager
def running_registry(home: Path) -> Iterator[str]:
    """docker-registry on a free loopback port with filesystem storage; yields host:port; stopped by PID."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"version": 0.1, "log": {"level": "warn"}, "http": {"addr": f"127.0.0.1:{port}"},
              "storage": {"filesystem": {"rootdirectory": str(home / "data")}}}
    (home / "config.yml").write_text(yaml.safe_dump(config))
    log = (home / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(home / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{(home / 'registry.log').read_text()}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
