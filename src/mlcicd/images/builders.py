"""Image builder plugins behind one small protocol: buildah, podman, docker buildx.

Every builder gets the same :class:`BuildRequest` and returns a :class:`BuildOutcome`
with the local image id and, when pushed, the manifest digest the registry stores.
Programs run from argv lists (never a shell), so labels, refs and paths are passed
verbatim whatever characters they contain. ``auto`` picks the first available builder
in :data:`AUTO_ORDER`: the daemonless ones first, because CI runners and laptops often
have a ``docker`` CLI without a daemon or without the buildx plugin.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlcicd.errors import EXIT_FAIL, MlciError, ToolMissingError, UsageError

TAIL_LINES = 20
# A build that installs packages over a slow network can take minutes; one that hangs
# (a registry that never answers) must not hold a CI runner for its whole job timeout.
BUILD_TIMEOUT = 3600.0
# A private containers-storage root (tests, parallel jobs): `<root>/root` and `<root>/runroot`.
STORAGE_ROOT_ENV = "MLCI_BUILDAH_ROOT"
BUILDER_WHERE = "input builder / mlci.yaml: image.builder"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    dockerfile: Path
    ref: str
    labels: Mapping[str, str]
    push: bool
    # For the registry pushed to, and for the one the base image is pulled from.
    tls_verify: bool
    pull_tls_verify: bool
    # Directory for the builder's id, digest and metadata files (outside the context).
    work: Path
    env: Mapping[str, str]
    timeout: float = BUILD_TIMEOUT
    # More references for the same image (the git-commit tag), built and pushed with ``ref``.
    also: tuple[str, ...] = ()

    @property
    def refs(self) -> list[str]:
        return [self.ref, *self.also]


@dataclass
class BuildOutcome:
    image_id: str
    digest: str  # manifest digest in the registry; "" when the image was not pushed
    build_seconds: float
    push_seconds: float
    tail: list[str] = field(default_factory=list)


class BuildFailed(MlciError):
    """The builder ran and failed; the stage reports it as a failed verdict with the log tail."""

    exit_code = EXIT_FAIL

    def __init__(self, builder: str, step: str, returncode: int | None, tail: list[str]) -> None:
        self.builder, self.step, self.returncode, self.tail = builder, step, returncode, tail
        how = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(f"{builder} {step} {how}; last {len(tail)} lines:\n" + "\n".join(tail))


class Builder(Protocol):
    name: str
    install_hint: str

    def problem(self, env: Mapping[str, str]) -> str | None:
        """Why this builder cannot run here, or None when it can."""

    def build(self, req: BuildRequest, log: Log) -> BuildOutcome: ...


def _which(program: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(program, path=env.get("PATH", os.defpath))


def run_tool(argv: list[str], env: Mapping[str, str], log: Log, timeout: float,
             cwd: Path | None = None) -> tuple[int | None, list[str]]:
    """Stream a program's output to the log; return its exit code (None on timeout) and tail."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1, cwd=cwd)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    # A timer, not a per-line check: a hung builder prints nothing.
    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            log(line)
            tail.append(line)
        code = proc.wait()
    finally:
        timer.cancel()
    if timed_out.is_set():
        tail.append(f"[mlci] killed after {timeout:.0f} s")
        return None, list(tail)
    return code, list(tail)


def read_digest(path: Path, builder: str) -> str:
    text = path.read_text().strip() if path.is_file() else ""
    if not _DIGEST.match(text):
        raise BuildFailed(builder, "push", 0, [f"[mlci] expected a sha256 digest in {path}, found {text!r}"])
    return text


def read_image_id(path: Path) -> str:
    text = path.read_text().strip() if path.is_file() else ""
    return text if text.startswith("sha256:") or not text else f"sha256:{text}"


def label_args(labels: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    return args


class StorageBuilder:
    """buildah and podman: same containers-storage flags, same build and push shape."""

    name = "buildah"
    program = "buildah"
    install_hint = "apt-get install -y buildah"

    def problem(self, env: Mapping[str, str]) -> str | None:
        return None if _which(self.program, env) else f"{self.program} is not on PATH"

    def global_args(self, env: Mapping[str, str]) -> list[str]:
        root = env.get(STORAGE_ROOT_ENV)
        if not root:
            # The user's own storage and driver (honours STORAGE_DRIVER / storage.conf):
            # forcing a driver there would clash with images already stored.
            return []
        # A private root: vfs needs no kernel overlay support or fuse inside CI containers.
        return ["--root", str(Path(root) / "root"), "--runroot", str(Path(root) / "runroot"),
                "--storage-driver", "vfs"]

    def build_argv(self, exe: str, req: BuildRequest) -> list[str]:
        return [
            exe, *self.global_args(req.env), "build",
            # chroot isolation needs no user namespaces and no OCI runtime on the runner.
            "--isolation", "chroot",
            # Epoch timestamps in the config, history and layer files: same inputs, same digest.
            "--timestamp", "0",
            # No io.buildah.version label: the digest must not depend on the runner's buildah.
            "--identity-label=false",
            f"--tls-verify={str(req.pull_tls_verify).lower()}",
            "--iidfile", str(req.work / "image-id"),
            "-f", str(req.dockerfile), *[arg for ref in req.refs for arg in ("-t", ref)],
            *label_args(req.labels), str(req.context),
        ]

    def push_argv(self, exe: str, req: BuildRequest, ref: str | None = None) -> list[str]:
        ref = ref or req.ref
        digest = req.work / ("digest" if ref == req.ref else "digest-also")
        return [exe, *self.global_args(req.env), "push", f"--tls-verify={str(req.tls_verify).lower()}",
                # Explicit, so a future default (zstd) cannot change the pushed digest.
                "--compression-format", "gzip",
                "--digestfile", str(digest), ref, f"docker://{ref}"]

    def build(self, req: BuildRequest, log: Log) -> BuildOutcome:
        exe = _which(self.program, req.env) or self.program
        start = time.perf_counter()
        code, tail = run_tool(self.build_argv(exe, req), req.env, log, req.timeout)
        if code != 0:
            raise BuildFailed(self.name, "build", code, tail)
        built = time.perf_counter()
        outcome = BuildOutcome(read_image_id(req.work / "image-id"), "", built - start, 0.0, tail)
        if req.push:
            # The same manifest under every tag: later pushes upload no blob and must give the same digest.
            for ref in req.refs:
                code, tail = run_tool(self.push_argv(exe, req, ref), req.env, log, req.timeout)
                if code != 0:
                    raise BuildFailed(self.name, "push", code, tail)
            outcome.digest = read_digest(req.work / "digest", self.name)
            if req.also and read_digest(req.work / "digest-also", self.name) != outcome.digest:
                raise BuildFailed(self.name, "push", 0, [f"[mlci] {req.also[-1]} got another digest than {req.ref}"])
            outcome.push_seconds = time.perf_counter() - built
            outcome.tail = tail
        return outcome


class PodmanBuilder(StorageBuilder):
    name = "podman"
    program = "podman"
    install_hint = "apt-get install -y podman"


class DockerBuildxBuilder:
    """docker buildx: builds and pushes in one BuildKit call; needs a daemon or a remote builder."""

    name = "docker"
    install_hint = "install Docker's buildx plugin (package docker-buildx-plugin from Docker's apt repository)"

    def problem(self, env: Mapping[str, str]) -> str | None:
        exe = _which("docker", env)
        if exe is None:
            return "docker is not on PATH"
        try:
            probe = subprocess.run([exe, "buildx", "version"], env=dict(env), capture_output=True, timeout=30,
                                   stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"docker buildx could not be run: {exc}"
        if probe.returncode != 0:
            return "docker is installed but its buildx plugin is missing"
        return None

    def build_argv(self, exe: str, req: BuildRequest) -> list[str]:
        # pull_tls_verify has no CLI switch here: BuildKit takes insecure registries for the
        # base image from its own buildkitd.toml, which the user's builder instance owns.
        # CSV: several names are one quoted field.
        names = f'"name={",".join(req.refs)}"' if req.also else f"name={req.ref}"
        if req.push:
            output = f"type=image,{names},push=true,rewrite-timestamp=true"
            if not req.tls_verify:
                output += ",registry.insecure=true"
        else:
            output = f"type=docker,{names},rewrite-timestamp=true"
        return [
            exe, "buildx", "build", "--file", str(req.dockerfile), *[a for r in req.refs for a in ("--tag", r)],
            *label_args(req.labels),
            # BuildKit's reproducibility switch; provenance attestations carry build times.
            "--build-arg", "SOURCE_DATE_EPOCH=0", "--provenance=false",
            "--iidfile", str(req.work / "image-id"), "--metadata-file", str(req.work / "metadata.json"),
            "--output", output, str(req.context),
        ]

    def build(self, req: BuildRequest, log: Log) -> BuildOutcome:
        exe = _which("docker", req.env) or "docker"
        env = {**req.env, "SOURCE_DATE_EPOCH": "0"}
        start = time.perf_counter()
        code, tail = run_tool(self.build_argv(exe, req), env, log, req.timeout)
        if code != 0:
            raise BuildFailed(self.name, "build and push" if req.push else "build", code, tail)
        outcome = BuildOutcome(read_image_id(req.work / "image-id"), "", time.perf_counter() - start, 0.0, tail)
        if req.push:
            meta_path = req.work / "metadata.json"
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            digest_file = req.work / "digest"
            digest_file.write_text(str(meta.get("containerimage.digest", "")))
            outcome.digest = read_digest(digest_file, self.name)
        return outcome


BUILDERS: dict[str, Builder] = {
    "buildah": StorageBuilder(),
    "podman": PodmanBuilder(),
    "docker": DockerBuildxBuilder(),
}
AUTO_ORDER: tuple[str, ...] = ("buildah", "podman", "docker")


def available_builders(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the builders that can run here, in ``auto``'s order of preference."""
    env = os.environ if env is None else env
    return [key for key in AUTO_ORDER if BUILDERS[key].problem(env) is None]


def select_builder(name: str | None, env: Mapping[str, str]) -> Builder:
    """The builder named by the input, or with ``auto`` the first one that can run here."""
    choice = (name or "auto").strip()
    if choice == "auto":
        reasons = []
        for key in AUTO_ORDER:
            why = BUILDERS[key].problem(env)
            if why is None:
                return BUILDERS[key]
            reasons.append(why)
        raise ToolMissingError(
            f"no image builder found (looked for {', '.join(AUTO_ORDER[:-1])} and docker buildx): "
            + "; ".join(reasons),
            where=f"{BUILDER_WHERE} (auto)",
            fix="install one, e.g. `apt-get install -y buildah` (daemonless, recommended), "
            f"`apt-get install -y podman`, or {BUILDERS['docker'].install_hint}; then re-run",
        )
    builder = BUILDERS.get(choice)
    if builder is None:
        raise UsageError(f"unknown builder {choice!r}", where=BUILDER_WHERE,
                         fix=f"use one of: auto, {', '.join(BUILDERS)}")
    why = builder.problem(env)
    if why is not None:
        raise ToolMissingError(f"builder {choice!r} cannot run: {why}", where=BUILDER_WHERE,
                               fix=f"{builder.install_hint}, or set `builder: auto` to use any installed builder")
    return builder
