"""A real package index on 127.0.0.1 (pypiserver) that takes uploads, and this machine's own indexes.

pypiserver speaks PyPI's upload API (what twine and pypa/gh-action-pypi-publish use) and the
simple index pip reads. Started with no fallback to pypi.org: what it serves is exactly what was
uploaded to it, and pip finds the dependencies on this machine's own indexes (``machine_indexes``)
as ``--extra-index-url``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from mlcicd.delivery.targets.processes import free_port, stop_pid, wait_http_ok

PYPI = "https://pypi.org/simple"


@dataclass(frozen=True)
class PackageIndex:
    url: str  # http://127.0.0.1:PORT
    packages: Path  # the directory it serves (and stores uploads in)

    @property
    def upload_url(self) -> str:
        """What twine's --repository-url (the publish action's repository-url) takes."""
        return f"{self.url}/"

    @property
    def simple(self) -> str:
        """What pip's --index-url takes."""
        return f"{self.url}/simple/"

    def files(self, project: str) -> list[str]:
        """The file names the simple index lists for ``project``."""
        page = requests.get(f"{self.simple}{project}/", timeout=30)
        if page.status_code == 404:
            return []
        page.raise_for_status()
        return sorted(a.split(">", 1)[1].split("<", 1)[0] for a in page.text.split("<a ")[1:])


@contextlib.contextmanager
def running_index(home: Path) -> Iterator[PackageIndex]:
    """pypiserver on a free loopback port, uploads without a login; stopped by PID."""
    packages = home / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Path(sys.executable).with_name("pypi-server")
    log = (home / "index.log").open("w")
    proc = subprocess.Popen([str(server), "run", "--host", "127.0.0.1", "--port", str(port), "--authenticate", ".",
                             "--passwords", ".", "--disable-fallback", "--hash-algo", "sha256", str(packages)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_http_ok(f"{url}/health", 60, pid=proc.pid):
            raise RuntimeError(f"pypiserver did not start:\n{(home / 'index.log').read_text()}")
        yield PackageIndex(url, packages)
    finally:
        stop_pid(proc.pid, timeout=10)
        log.close()


def machine_indexes() -> list[str]:
    """The indexes this machine's pip reads (environment first, then its configuration files): where
    a job installing from a private index finds the dependencies."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True).stdout
    config: dict[str, str] = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config.setdefault(key.rsplit(".", 1)[-1], value.strip().strip("'\""))
    index = os.environ.get("PIP_INDEX_URL") or config.get("index-url") or PYPI
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url") or ""
    return [index, *extra.split()]
