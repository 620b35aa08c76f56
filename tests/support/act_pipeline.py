"""Running a consumer's rendered GitHub workflow with act, as the e2e tests do."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from act_artifacts import stand_ins
from consumer import REPO, Consumer
from runners import ActRun, Images, clean_env, keep_log, tool

from mlcicd.delivery.targets.processes import free_port
from mlcicd.gen.pipeline import DOWNLOAD_ARTIFACT, UPLOAD_ARTIFACT

WORKFLOW = ".github/workflows/ml-pipeline.yml"
RUNS = itertools.count(1)


def act(consumer: Consumer, suite: Path, images: Images, home: Path, workflow: str = WORKFLOW,
        extra: tuple[str, ...] = (), event: str = "push") -> ActRun:
    # Every run gets an artifact store of its own: act numbers every run 1, so a shared store
    # would hand a run the artifacts of the one before.
    artifacts = home / "artifacts" / f"run-{next(RUNS)}"
    artifacts.mkdir(parents=True)
    argv = [tool("act", REPO / ".venv" / "bin"), event, "-W", workflow, "--json",
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server",
            "--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
            "--artifact-server-port", str(free_port()),
            *stand_ins(home / "artifact-actions", UPLOAD_ARTIFACT.split()[0], DOWNLOAD_ARTIFACT.split()[0]),
            "--local-repository", f"org/ml-cicd@v1={suite}",
            "--env", f"MLCI_BUILDAH_ROOT={images.storage}", *extra]
    # act keeps its work and the runner tool cache (where the actions keep their venv) under
    # $HOME/.cache/act: a private HOME keeps test runs apart; the pip cache stays shared.
    env = clean_env(HOME=str(home), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    proc = subprocess.run(argv, cwd=consumer.root, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=1800)
    keep_log("act", proc.stdout + proc.stderr)
    return ActRun.parse(proc.returncode, proc.stdout, proc.stderr, artifacts)
