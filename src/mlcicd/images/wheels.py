"""The image's Python packages, resolved on the builder into the build context.

Why on the builder and not with ``pip install`` inside the image build: the runner's pip
already knows how to reach the package index (its index URL, proxy, CA bundle, private
index credentials, all in ``PIP_*`` variables and pip.conf). A build container sees none
of that, and passing it in as build arguments would put index credentials into the
build's history. So pip on the builder downloads wheels for the image's platform
(``--only-binary :all: --platform … --python-version …``, so nothing is compiled for the
wrong machine) into ``context/wheels/``, and the image installs them with ``--no-index
--require-hashes`` from a bind mount: no network, no credentials, and no wheel files left
in a layer. ``requirements.lock`` (every wheel's ``name==version --hash``) goes into the
image (``/opt/mlci/requirements.lock``) and the stage's report, so what an image holds is
never a guess.

What gets installed: the model's own requirements (MLflow's ``requirements.txt``), with
its ``mlflow==X`` pin served by ``mlflow-skinny==X`` (the server needs ``mlflow.pyfunc``,
not the tracking server, UI and their ~90 MB of wheels), plus ml-cicd's server
(``ml-cicd[serve]``), built from the very source this runner runs when that is a
checkout, so the image serves with the code that built it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from mlcicd.errors import UsageError
from mlcicd.images.builders import BuildFailed, Log, run_tool
from mlcicd.version import build_info, rebuild_env

WHEELS = "wheels"  # directory in the build context
LOCK = "requirements.lock"
SERVER_DIST = "ml-cicd"
PIP_TIMEOUT = 1800.0
# Wheels the server's own build produces get these zip timestamps: same source, same bytes.
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip file can say
PYTHON_WHERE = "mlci.yaml: image.python"
PLATFORM_WHERE = "mlci.yaml: image.platform"
_PYTHON = re.compile(r"^3\.(\d{1,2})$")
_PLATFORM = re.compile(r"^(?P<family>manylinux|musllinux)_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>[a-z0-9_]+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MLFLOW = re.compile(r"^\s*mlflow(?=\s*(?:\[|[<>=!~;@ ]|$))", re.IGNORECASE)
# Left out of a source tree before its wheel is built: large, and never part of the package.
# `build/` especially: setuptools would package stale modules it still holds from an older build.
_TOP_JUNK = {".git", ".venv", "venv", ".tox", ".nox", "node_modules", ".e2e-tools", "build", "dist", ".mlci",
             ".mlci-demo", "mlci-report", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class WheelTarget:
    """The interpreter and platform the wheels are for: the image's, not the runner's."""

    python: str  # "3.11"
    platform: str  # "manylinux_2_28_x86_64"

    def platforms(self) -> list[str]:
        """The platform and every older one a wheel may be tagged with (pip does not expand them)."""
        m = _PLATFORM.match(self.platform)
        if m is None:
            return [self.platform]
        family, major, minor, arch = m["family"], int(m["major"]), int(m["minor"]), m["arch"]
        low = 0 if family == "musllinux" else 5
        tags = [f"{family}_{major}_{n}_{arch}" for n in range(minor, low - 1, -1)]
        if family == "manylinux" and major == 2:
            tags += [f"{alias}_{arch}" for alias, (_, floor) in _LEGACY.items() if floor <= minor]
        return tags

    def pip_args(self) -> list[str]:
        abi = "cp3" + self.python.split(".")[1]
        # pip adds the abi3 and none ABIs of that interpreter by itself.
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", abi]
        for tag in self.platforms():
            args += ["--platform", tag]
        return args


def model_python(model_dir: Path) -> str | None:
    """``X.Y`` of the Python the model was saved with (MLflow's python_env.yaml, else conda.yaml)."""
    found: list[object] = []
    for name, key in (("python_env.yaml", "python"), ("conda.yaml", "dependencies")):
        try:
            doc = yaml.safe_load((model_dir / name).read_text())
        except (OSError, yaml.YAMLError):
            continue
        value = doc.get(key) if isinstance(doc, dict) else None
        found += value if isinstance(value, list) else [value]
    for value in found:
        m = re.match(r"^(?:python\s*[=<>~]*\s*)?(3\.\d+)", str(value or ""))
        if m:
            return m.group(1)
    return None


def wheel_target(model_dir: Path, python: str | None, plat: str | None) -> WheelTarget:
    version = (python or "").strip() or model_python(model_dir) or f"{sys.version_info[0]}.{sys.version_info[1]}"
    m = _PYTHON.match(version)
    if m is None or int(m.group(1)) < 8:
        raise UsageError(f"{version!r} is not a Python version", where=PYTHON_WHERE,
                         fix="write major.minor, e.g. `python: \"3.11\"` (quoted: YAML reads 3.10 as 3.1)")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    tag = (plat or "").strip() or f"manylinux_2_28_{arch}"
    legacy = re.match(r"^(manylinux1|manylinux2010|manylinux2014)_(\w+)$", tag)
    if legacy:
        major, minor = _LEGACY[legacy.group(1)]
        tag = f"manylinux_{major}_{minor}_{legacy.group(2)}"
    if not _PLATFORM.match(tag):
        raise UsageError(f"{tag!r} is not a Linux wheel platform tag", where=PLATFORM_WHERE,
                         fix="name the oldest glibc (or musl) of the base image and its CPU, e.g. "
                         "`platform: manylinux_2_36_x86_64` for Debian 12, `manylinux_2_28_aarch64`, "
                         "`musllinux_1_2_x86_64` for Alpine")
    return WheelTarget(version, tag)


def model_requirements(model_dir: Path) -> list[str]:
    """The model's pip requirements: MLflow's requirements.txt, else conda.yaml's pip list."""
    req = model_dir / "requirements.txt"
    if req.is_file():
        lines = [line.strip() for line in req.read_text().splitlines()]
        return [line for line in lines if line and not line.startswith("#")]
    conda = model_dir / "conda.yaml"
    if conda.is_file():
        doc = yaml.safe_load(conda.read_text()) or {}
        for dep in doc.get("dependencies", []) if isinstance(doc, dict) else []:
            if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
                return [str(r).strip() for r in dep["pip"] if str(r).strip()]
    raise UsageError(
        f"the model at {model_dir} lists no requirements (no requirements.txt or conda.yaml pip section)",
        where="input model-uri",
        fix="log the model with MLflow (mlcicd.log_model passes pip_requirements), or set "
        "`image: {requirements: none}` with a base image that already has the model's libraries",
    )


def image_requirements(model_reqs: list[str], mlflow_package: str) -> list[str]:
    """The model's requirements with its mlflow pin served by ``mlflow_package`` (same version)."""
    return [_MLFLOW.sub(mlflow_package, line, count=1) for line in model_reqs]


def _parse_wheel_name(filename: str) -> tuple[str, str]:
    parts = filename[: -len(".whl")].split("-")
    return re.sub(r"[-_.]+", "-", parts[0]).lower(), parts[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Resolved:
    target: WheelTarget
    lock: str  # requirements.lock text
    pip_wheel: str  # file name of the pip wheel that installs the others inside the image
    packages: dict[str, str]  # name -> version


def server_source(env: Mapping[str, str]) -> str | None:
    """Where this runner's ml-cicd came from, as something ``pip wheel`` builds; None: from an index."""
    # The installed distribution's record, not a source tree's ml_cicd.egg-info that happens to be
    # earlier on sys.path (a checkout's src/ on the path): only pip's record says where it came from.
    raw = next((text for dist in metadata.distributions(name=SERVER_DIST)
                if (text := dist.read_text("direct_url.json"))), None)
    if not raw:
        return None
    info = json.loads(raw)
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):
        return f"{vcs['vcs']}+{url}@{vcs.get('commit_id') or vcs.get('requested_revision') or ''}".rstrip("@")
    if url.startswith("file:"):
        return urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    return url or None


def _copy_source(src: Path, dst: Path) -> Path:
    """A clean copy of a source tree: pip builds in place and would litter (and reuse) the checkout."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = _TOP_JUNK if Path(directory) == src else set()
        return {n for n in names if n in top or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)
    return dst


def resolve(dest: Path, work: Path, model_dir: Path, target: WheelTarget, *, mlflow_package: str,
            constraints: Path | None, env: Mapping[str, str], log: Log) -> Resolved:
    """Download every wheel the image needs into ``dest`` and write ``dest/requirements.lock``."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip"]
    quiet = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    server = f"{SERVER_DIST}[serve]"
    source = server_source(env)
    # The build's own record (not the dist metadata, which an editable install freezes at install time):
    # the wheel built below carries the same version.
    version = build_info().version if _installed_version(SERVER_DIST) else None
    if source is not None:
        built = work / "server-wheel"
        shutil.rmtree(built, ignore_errors=True)
        where = _copy_source(Path(source), work / "server-source") if Path(source).is_dir() else source
        log(f"building the {SERVER_DIST} wheel from {source}")
        # The copy has no .git for setuptools-scm to read: build it as the installed version (and
        # commit), which is also what the image pins below.
        _pip([*pip, "wheel", *quiet, "--no-deps", "-w", str(built), str(where)],
             {**env, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **rebuild_env(build_info())}, log, "wheel of ml-cicd")
        for wheel in built.glob("*.whl"):
            shutil.copy2(wheel, dest / wheel.name)
    if version:
        server += f"=={version}"
    wanted = [*image_requirements(model_requirements(model_dir), mlflow_package), server]
    (work / "requirements.in").write_text("\n".join(wanted) + "\n")
    argv = [*pip, "download", *quiet, "-d", str(dest), "--find-links", str(dest), *target.pip_args(),
                  "-r", str(work / "requirements.in")]
    if constraints is not None:
        argv += ["-c", str(constraints)]
    log(f"resolving wheels for CPython {target.python} on {target.platform}: {', '.join(wanted)}")
    # cwd: MLflow writes paths of bundled wheels (code/, wheels/) relative to the model directory.
    _pip(argv, env, log, "download of the model's requirements", cwd=model_dir)
    pip_version = _installed_version("pip") or ""
    _pip([*pip, "download", *quiet, "--no-deps", "-d", str(work / "pip"), *target.pip_args(),
                f"pip=={pip_version}" if pip_version else "pip"], env, log, "download of pip")
    pip_wheel = next((work / "pip").glob("pip-*.whl"))
    lines, packages = [], {}
    for wheel in sorted(dest.glob("*.whl")):
        name, ver = _parse_wheel_name(wheel.name)
        packages[name] = ver
        lines.append(f"{name}=={ver} --hash=sha256:{_sha256(wheel)}")
    shutil.copy2(pip_wheel, dest / pip_wheel.name)
    lock = (f"# Installed by ml-cicd build-image for CPython {target.python} on {target.platform}\n"
            "# with pip install --no-index --require-hashes; one line per wheel.\n" + "\n".join(lines) + "\n")
    (dest / LOCK).write_text(lock)
    return Resolved(target, lock, pip_wheel.name, packages)


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pip(argv: list[str], env: Mapping[str, str], log: Log, what: str, cwd: Path | None = None) -> None:
    code, tail = run_tool(argv, env, log, PIP_TIMEOUT, cwd=cwd)
    if code != 0:
        raise BuildFailed("pip", what, code, tail)
