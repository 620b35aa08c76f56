"""A throwaway consumer repository for end-to-end tests, and the users who send it traffic.

The consumer holds the example project (data, train.py, mlci.yaml) and the pipeline that
``mlci-gen render`` writes for it, exactly as a user's repository would. Its config points
at real servers on 127.0.0.1: an MLflow tracking server (jobs run in separate workspaces
and share state only through it) and an image registry, and keeps the local deploy
target's state in one absolute directory (every job on this host drives the same nginx).
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlcicd.config import load_config
from mlcicd.delivery.targets import open_target
from mlcicd.delivery.traffic import LoadGenerator, TrafficStats, probe_versions, read_rows
from mlcicd.registry import Registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "credit-risk"
BAD_TRAINING = "python train.py --variant no-imputer"
GOOD_TRAINING = "python train.py --C {c}"
GIT_USER = ["-c", "user.name=mlci-e2e", "-c", "user.email=e2e@mlci.invalid"]
# Live traffic lacks an income on about 1 request in 10: the no-imputer model answers those with 5xx.
MISSING_INCOME_SHARE = 0.1


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *GIT_USER, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def export_tree(dst: Path) -> Path:
    """Copy the files of this checkout that git tracks or would track (no .venv, no caches)."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listing):
        src = REPO / rel
        if src.is_file():
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    # No .git in the copy: give setuptools-scm the version file a source archive of HEAD holds
    # (git archive fills in these files through export-subst), as on a GitHub action's checkout.
    substituted = [".git_archival.txt", "src/mlcicd/COMMIT"]
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", *substituted], cwd=REPO,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for name in substituted:
            member = tar.extractfile(name)
            assert member is not None, name
            (dst / name).write_bytes(member.read())
    return dst


def answering_versions(endpoint: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """One request per row through ``endpoint``: how many each model version answered (all must be 200)."""
    answers = probe_versions(endpoint, rows, timeout=5)
    assert answers.codes == {200: len(rows)}, answers
    return dict(answers.versions)


@dataclass
class Consumer:
    root: Path
    model_name: str
    port: int
    tracking_uri: str

    @classmethod
    def create(cls, root: Path, *, model_name: str, port: int, tracking_uri: str, registry: str, base_image: str,
               state_dir: Path, remote: str | None = None) -> Consumer:
        root.mkdir(parents=True)
        for name in ("data", "train.py", "mlci.yaml"):
            src = EXAMPLE / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
        cfg = yaml.safe_load((root / "mlci.yaml").read_text())
        cfg["mlflow"] = {"model_name": model_name, "tracking_uri": tracking_uri}
        # busybox base: no python inside, so nothing to install or check; the local target never runs
        # the image (tests/integration/test_build_image.py builds and runs one that serves).
        cfg["image"] = {"registry": registry, "base": base_image, "builder": "buildah", "requirements": "none",
                        "check": False}
        cfg["deploy"]["local"] = {"port": port, "state_dir": str(state_dir)}
        (root / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        git(root, "init", "-q", "-b", "main")
        if remote:
            git(root, "remote", "add", "origin", remote)
        return cls(root, model_name, port, tracking_uri)

    def render(self, ci: str, ref: str, output: str) -> Path:
        """Write the pipeline the way a user does: `mlci-gen render ... --output`."""
        mlci_gen = Path(sys.executable).with_name("mlci-gen")
        subprocess.run([str(mlci_gen), "render", "--ci", ci, "--ref", ref, "--source", "org/ml-cicd",
                        "--output", output], cwd=self.root, check=True, capture_output=True, text=True)
        return self.root / output

    def set_training(self, command: str) -> None:
        cfg = yaml.safe_load((self.root / "mlci.yaml").read_text())
        cfg["train"]["command"] = command
        (self.root / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def commit(self, message: str) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        return git(self.root, "rev-parse", "HEAD")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Users at one pace throughout, or a trickle between bakes (:class:`BakeTraffic`).
    steady_users = False

    def users(self, rate: float = 50.0) -> LoadGenerator:
        return production_users(self.root, self.endpoint, rate, steady=self.steady_users)

    def answering_versions(self, n: int = 40) -> dict[str, int]:
        """Which model versions answer complete rows through the router right now."""
        return answering_versions(self.endpoint, read_rows(self.root / "data" / "eval.csv", drop=("default",),
                                                           limit=n))

    def stop_deployment(self) -> None:
        """Stop the router and model servers the pipelines left serving (a deploy keeps them up)."""
        open_target(load_config(self.root / "mlci.yaml")).shutdown()

    def registry(self) -> Registry:
        return Registry.from_config(load_config(self.root / "mlci.yaml"))


@dataclass
class BakeTraffic:
    """The users' pace: ``full`` requests/s while a bake may be judging, a trickle otherwise.

    A bake is judging while two versions answer (a canary) or while a version is new (a first
    release, a canary's first seconds). Between bakes (training, gates, image builds) a trickle
    still checks that users are always answered, and leaves the CPU to the jobs: the e2e
    pipelines run for many minutes on two cores, mostly outside their bakes.
    """

    full: float
    trickle: float = 5.0
    new_for: float = 300.0  # longer than a healthy bake of these tests takes, first release included

    def __call__(self, stats: TrafficStats) -> float:
        answering = stats.answering(within=5.0)
        now = time.monotonic()
        judging = len(answering) > 1 or any(now - first < self.new_for for first in answering.values())
        return self.full if judging else min(self.trickle, self.full)


def production_users(repo: Path, endpoint: str, rate: float, *, steady: bool = False) -> LoadGenerator:
    """Users of the deployed model: the example's eval rows, about one in ten without an income (as
    production sends them), at ``rate`` requests/s: always if ``steady``, else while a bake may be
    judging (:class:`BakeTraffic`)."""
    rows = read_rows(repo / "data" / "eval.csv", drop=("default",))

    def missing_income(i: int, row: dict[str, Any]) -> dict[str, Any]:
        # Random per request: a strict period would alias with nginx's weighted round-robin.
        if random.Random(i).random() < MISSING_INCOME_SHARE:
            row["income"] = None
        return row

    return LoadGenerator(endpoint, rows, rate=rate if steady else BakeTraffic(rate), workers=4, mutate=missing_income,
                         timeout=3.0)
