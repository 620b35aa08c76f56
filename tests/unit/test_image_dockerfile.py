"""The rendered Dockerfile: shape, determinism, no injection, the offline install and the check."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from mlcicd.errors import UsageError
from mlcicd.images.dockerfile import (
    Packages,
    check_command,
    entrypoint,
    install_script,
    render_dockerfile,
    server_python,
)

NASTY = 'x"; rm -rf / #\nRUN echo pwned $HOME `id`'
PACKAGES = Packages("3.11", "pip-26.3-py3-none-any.whl")


def _dockerfile(install: str = "pip install ml-cicd", name: str = "credit-risk") -> str:
    return render_dockerfile(base="python:3.11-slim", install=install, entry=entrypoint(name, "3", "abc123"))


def _instruction(text: str, keyword: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.startswith(keyword + " ")]
    assert len(lines) == 1, text
    return list(json.loads(lines[0][len(keyword) + 1 :]))


def test_dockerfile_shape():
    text = _dockerfile()
    lines = text.splitlines()
    assert lines[1] == "FROM docker.io/library/python:3.11-slim"
    assert "COPY model/ /opt/ml/model/" in lines
    assert "USER 10001:10001" in lines and "EXPOSE 8080" in lines
    assert "HEALTHCHECK" not in text and "LABEL" not in text and "ARG" not in text
    # The install runs as root, before the switch to the unprivileged user.
    assert lines.index("USER 10001:10001") > next(i for i, line in enumerate(lines) if line.startswith("RUN "))
    assert _instruction(text, "RUN") == ["/bin/sh", "-c", "pip install ml-cicd"]
    assert _instruction(text, "ENTRYPOINT") == [
        "python", "-m", "mlcicd.serving", "--model-dir", "/opt/ml/model", "--host", "0.0.0.0", "--allow-remote",
        "--port", "8080", "--model-name", "credit-risk", "--model-version", "3", "--run-id", "abc123"]


def test_dockerfile_is_deterministic():
    assert _dockerfile() == _dockerfile()
    assert _dockerfile().encode() == _dockerfile().encode()


def test_empty_install_has_no_run_step():
    assert "RUN" not in _dockerfile(install="  ")


def test_user_strings_cannot_add_instructions_or_expand():
    text = _dockerfile(install=NASTY, name=NASTY)
    assert len(text.splitlines()) == len(_dockerfile().splitlines())  # nothing spilled onto a new line
    assert _instruction(text, "RUN") == ["/bin/sh", "-c", NASTY]
    entry = _instruction(text, "ENTRYPOINT")
    assert entry[entry.index("--model-name") + 1] == NASTY
    # `$` survives only inside exec-form JSON, which Dockerfile parsers neither expand nor split
    # (checked with buildah: the image's Entrypoint keeps the value verbatim).
    assert all(line.startswith(("RUN [", "ENTRYPOINT [")) for line in text.splitlines() if "$HOME" in line)
    assert json.dumps(NASTY, ensure_ascii=True) in text


def test_entrypoint_without_run_id():
    assert "--run-id" not in entrypoint("m", "1", None)


@pytest.mark.parametrize("bad", ["python:3.11\nRUN id", "-v", "a b", "img$X", '"quoted"', ""])
def test_base_image_is_validated(bad):
    with pytest.raises(UsageError, match=r"image\.base"):
        render_dockerfile(base=bad, install="", entry=["x"])




def _lines_with(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


def test_model_requirements_are_installed_from_a_bind_mount_then_checked_as_the_server_user():
    python = server_python(PACKAGES)
    text = render_dockerfile(base="127.0.0.1:5000/mlci/python:3.11-bookworm", install="",
                             entry=entrypoint("m", "3", None, python), packages=PACKAGES, check=check_command(python))
    lines = text.splitlines()
    run = _lines_with(text, "RUN --mount=type=bind,source=wheels,target=/tmp/mlci-wheels [")
    assert len(run) == 1
    script = json.loads(run[0].split(" ", 2)[2])[2]
    assert "--no-index" in script and "--require-hashes" in script and "/tmp/mlci-wheels/requirements.lock" in script
    assert "pip-26.3-py3-none-any.whl/pip install" in script  # pip runs from its wheel: none in the image
    assert "ENV VIRTUAL_ENV=/opt/mlci/venv PATH=/opt/mlci/venv/bin:$PATH" in lines
    check = lines.index('RUN ["/opt/mlci/venv/bin/python", "-m", "mlcicd.serving.check", "--model-dir", '
                        '"/opt/ml/model"]')
    # Install as root, then the model, then the check as the unprivileged user.
    assert lines.index(run[0]) < lines.index("COPY model/ /opt/ml/model/") < lines.index("USER 10001:10001") < check
    assert json.loads(_lines_with(text, "ENTRYPOINT ")[0][len("ENTRYPOINT "):])[0] == "/opt/mlci/venv/bin/python"


def test_without_packages_the_base_python_serves():
    text = render_dockerfile(base="b:1", install="", entry=entrypoint("m", "1", None, server_python(None)))
    assert "--mount" not in text and "VIRTUAL_ENV" not in text and "mlcicd.serving.check" not in text
    assert json.loads(_lines_with(text, "ENTRYPOINT ")[0][len("ENTRYPOINT "):])[0] == "python"


def _guard_of(script: str) -> str:
    line = next(line for line in script.splitlines() if line.startswith('"$py" -c '))
    return shlex.split(line)[2]


def test_install_script_is_valid_shell_and_its_python_guard_names_the_fix():
    script = install_script(PACKAGES)
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    other = "3.12" if sys.version_info[:2] == (3, 11) else "3.11"
    guard = _guard_of(install_script(Packages(other, PACKAGES.pip_wheel)))
    out = subprocess.run([sys.executable, "-c", guard], capture_output=True, text=True)
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert out.returncode == 1
    assert f"has Python {mine} but the wheels were resolved for Python {other}" in out.stderr
    assert f"image.python: '{mine}'" in out.stderr
    ok = _guard_of(install_script(Packages(mine, PACKAGES.pip_wheel)))
    assert subprocess.run([sys.executable, "-c", ok]).returncode == 0


def test_a_base_without_python_gets_a_clear_message(tmp_path):
    script = install_script(PACKAGES)
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert out.returncode == 1 and "no python3 on PATH" in out.stderr and "mlci image base" in out.stderr


@pytest.mark.parametrize("bad", ["python:3.11\nRUN id", "-v"])
def test_base_is_checked_with_packages_too(bad):
    with pytest.raises(UsageError, match=r"image\.base"):
        render_dockerfile(base=bad, install="", entry=["x"], packages=PACKAGES)
