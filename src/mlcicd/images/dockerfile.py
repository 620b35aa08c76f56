"""The Dockerfile of a model-server image.

Deterministic: the text depends only on the arguments. Safe: user strings never reach a
shell or Dockerfile variable expansion. ``RUN`` and ``ENTRYPOINT`` use the JSON (exec)
form, which Dockerfile parsers neither expand nor split, and the install script is ours,
with user values (none today) passed only as its arguments.

Layout of an image with ``image.requirements: model``::

    /opt/mlci/venv               the server and the model's requirements (a venv: Debian's
                                 Python refuses pip installs into the system, PEP 668)
    /opt/mlci/requirements.lock  every wheel installed, name==version --hash
    /opt/ml/model                the MLflow model

The wheels come from the build context through a bind mount (``RUN --mount``), so they
are installed without ever being part of a layer; buildah, podman and BuildKit all
support it. The model is copied last: a new model version rebuilds one small layer.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from mlcicd.images.context import check_base_image
from mlcicd.images.wheels import LOCK, WHEELS

MODEL_DIR = "/opt/ml/model"
SERVER_PORT = 8080
# Numeric, so the base image needs no /etc/passwd entry (a busybox or distroless base works).
RUNTIME_USER = "10001:10001"
VENV = "/opt/mlci/venv"
WHEELS_MOUNT = "/tmp/mlci-wheels"


@dataclass(frozen=True)
class Packages:
    """Install the wheels of the build context's ``wheels/`` for this Python."""

    python: str  # "3.11"
    pip_wheel: str  # file name of the pip wheel in wheels/, which runs the install


def server_python(packages: Packages | None) -> str:
    return f"{VENV}/bin/python" if packages else "python"


def entrypoint(model_name: str, version: str, run_id: str | None, python: str = "python") -> list[str]:
    argv = [python, "-m", "mlcicd.serving", "--model-dir", MODEL_DIR, "--host", "0.0.0.0",
            # The container's network namespace is the boundary; inside it the server must
            # listen on all interfaces or the published port reaches nothing.
            "--allow-remote", "--port", str(SERVER_PORT),
            "--model-name", model_name, "--model-version", version]
    if run_id:
        argv += ["--run-id", run_id]
    return argv


def check_command(python: str = "python") -> list[str]:
    return [python, "-m", "mlcicd.serving.check", "--model-dir", MODEL_DIR]


def install_script(packages: Packages) -> str:
    """Shell script (run as root) that puts the wheels into a venv, offline, hash-checked."""
    want = packages.python
    guard = ("import sys; v = '%d.%d' % sys.version_info[:2]; "
             f"sys.exit(0 if v == {want!r} else 'ml-cicd: the base image has Python ' + v + "
             f"' but the wheels were resolved for Python {want} (the Python the model was saved with). "
             f"Use a base image with Python {want}, or set image.python: ' + repr(v) + ' in mlci.yaml')")
    wheels = WHEELS_MOUNT
    steps = [
        "set -eu",
        'py="$(command -v python3 || command -v python || true)"',
        '[ -n "$py" ] || { echo "ml-cicd: the base image has no python3 on PATH. Use a Python base image '
        '(mlci image base --debian bookworm makes one), or set image.requirements: none with a base '
        'that already has the model server" >&2; exit 1; }',
        f'"$py" -c {shlex.quote(guard)}',
        f'"$py" -m venv --without-pip {VENV}',
        # pip runs straight from its wheel (a documented way to bootstrap it): the image needs no pip.
        f"{VENV}/bin/python {wheels}/{packages.pip_wheel}/pip install --no-index --find-links {wheels} "
        f"--require-hashes --no-compile --no-cache-dir --disable-pip-version-check --no-warn-script-location "
        f"--quiet -r {wheels}/{LOCK}",
        f"cp {wheels}/{LOCK} /opt/mlci/{LOCK}",
        # Hash-based .pyc: the server's processes import fast (they cannot write __pycache__ as
        # user 10001), and unlike timestamp-based ones the bytes do not depend on when we built.
        f"{VENV}/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash {VENV}/lib",
    ]
    return "\n".join(steps)


def _exec_form(argv: list[str]) -> str:
    # JSON with ASCII escapes: a newline or `$` inside a value stays inside one JSON string
    # and cannot start a new Dockerfile instruction or trigger variable expansion.
    return json.dumps(argv, ensure_ascii=True)


def render_dockerfile(*, base: str, install: str, entry: list[str], packages: Packages | None = None,
                      check: list[str] | None = None) -> str:
    """The Dockerfile text; identical arguments give byte-identical output.

    ``install`` (the user's, e.g. ``apt-get install -y libgomp1``) runs as root first;
    ``packages`` installs the wheels; ``check`` runs as the server's user once the model
    is in place, so a model the image cannot load fails the build, not the deploy.
    """
    lines = [
        "# Rendered by ml-cicd build-image. Do not edit: change mlci.yaml `image:` and re-run the stage.",
        f"FROM {check_base_image(base)}",
        # HOME: the numeric user has no passwd entry, so HOME would be `/`, which it cannot write.
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MLFLOW_DISABLE_TELEMETRY=true HOME=/tmp",
    ]
    if install.strip():
        # Before the model: the install layer changes less often and stays cached on docker.
        lines.append(f"RUN {_exec_form(['/bin/sh', '-c', install])}")
    if packages:
        lines.append(f"RUN --mount=type=bind,source={WHEELS},target={WHEELS_MOUNT} "
                     f"{_exec_form(['/bin/sh', '-c', install_script(packages)])}")
        # `python` in a shell inside the container is the server's (our literal: `$PATH` is the base's).
        lines.append(f"ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH")
    lines += [f"COPY model/ {MODEL_DIR}/", f"USER {RUNTIME_USER}"]
    if check:
        lines.append(f"RUN {_exec_form(check)}")
    lines += [f"EXPOSE {SERVER_PORT}", f"ENTRYPOINT {_exec_form(entry)}"]
    return "\n".join(lines) + "\n"
