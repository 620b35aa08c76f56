"""gitlab-ci-local on a consumer's rendered pipeline, as the e2e tests run it.

The components come from a bare git repository of this checkout tagged 1.0.0 (a per-URL
`insteadOf` points the project's address at it); jobs run in the shell executor with a Python
that has ml-cicd installed from a wheel of the same checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from consumer import Consumer, git
from runners import NODE_BIN, Images, clean_env, keep_log, tool
from shared_cache import built_once

HOST = "gitlab.example.com"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
JOB_RESULT = re.compile(r"^\s*(PASS|FAIL|WARN)\s+(\S+)\s*$")


@dataclass
class GitlabRun:
    code: int
    log: str
    results: dict[str, str] = field(default_factory=dict)  # job -> PASS / FAIL / WARN
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # job -> dotenv report

    reports: dict[str, str] = field(default_factory=dict)  # job -> its stage's Markdown report

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def why(self) -> str:
        """The reports of the jobs that failed, then the log's tail: what an assertion should show."""
        failed = [f"--- {job}\n{self.reports.get(job, '(no report)')}"
                  for job, result in self.results.items() if result == "FAIL"]
        return "\n".join([*failed, self.tail(40)])


@dataclass
class GitlabLocal:
    binary: str
    env: dict[str, str]
    variables: list[str]

    def run(self, consumer: Consumer | Path, *jobs: str, variables: tuple[str, ...] = ()) -> GitlabRun:
        """Run ``jobs`` (none: the whole pipeline) of the project at ``consumer`` (or that directory)."""
        root = consumer if isinstance(consumer, Path) else consumer.root
        state = root / ".gitlab-ci-local"
        if not jobs:  # a new pipeline: no dotenv report of an earlier one may be mistaken for this one's
            shutil.rmtree(state / "artifacts", ignore_errors=True)
        argv = [self.binary, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
                *(a for v in (*self.variables, *variables) for a in ("--variable", v)), *jobs]
        proc = subprocess.run(argv, cwd=root, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=1800)
        log = ANSI.sub("", proc.stdout + proc.stderr)
        keep_log("gitlab-ci-local", log)
        run = GitlabRun(proc.returncode, log)
        for line in log.splitlines():
            m = JOB_RESULT.match(line)
            if m:
                run.results[m.group(2)] = m.group(1)
        for job in run.results:
            stage = job.removeprefix("mlci-")
            markdown = state / "artifacts" / job / "mlci-report" / f"{stage}.md"
            if markdown.is_file():
                run.reports[job] = markdown.read_text()
            report = state / "artifacts" / job / "mlci-report" / f"{stage}.env"
            if report.is_file():
                prefix = "MLCI_" + stage.upper().replace("-", "_") + "_"
                pairs = (line.split("=", 1) for line in report.read_text().splitlines() if "=" in line)
                run.outputs[job] = {k.removeprefix(prefix).lower().replace("_", "-"): v for k, v in pairs}
        return run


def bare_components(suite: Path, work: Path) -> Path:
    """A bare repository of the checkout with tag 1.0.0 (under ``work``): what GitLab serves for `@1.0.0`."""
    src = work / "src"
    shutil.copytree(suite, src)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "ml-cicd 1.0.0")
    git(src, "tag", "1.0.0")
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(work / "ml-cicd.git")], check=True)
    return work / "ml-cicd.git"


def job_venv(suite: Path, work: Path) -> tuple[Path, Path]:
    """The jobs' Python (under ``work``, built once: see shared_cache.built_once): a venv with ml-cicd
    installed from a wheel of the checkout; (bin dir, wheel)."""

    def build(work: Path) -> None:
        python = Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run([str(python), "-m", "venv", str(work / "venv")], check=True)
        pip = [str(work / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(work / "wheels"), str(suite)], check=True,
                       capture_output=True)
        wheel = next((work / "wheels").glob("ml_cicd-*.whl"))
        subprocess.run([*pip, "install", f"{wheel}[all]"], check=True, capture_output=True)

    built_once(work, build)
    return work / "venv" / "bin", next((work / "wheels").glob("ml_cicd-*.whl"))


def gitlab_runner(components: Path, job_python: tuple[Path, Path], images: Images | None = None) -> GitlabLocal:
    """gitlab-ci-local with the components at ``components`` and jobs on ``job_python`` (and, for
    build-image, buildah's storage of ``images``)."""
    binary = tool("gitlab-ci-local", NODE_BIN)
    bin_dir, wheel = job_python
    env = clean_env()
    env["PATH"] = f"{bin_dir}:{NODE_BIN}:{env['PATH']}"  # gitlab-ci-local needs the Node 22 next to it
    # The components read $[[ component.sha ]]: gitlab-ci-local resolves it with `git ls-remote` on
    # https://<host>:443/<project>.git, a third spelling of the same project.
    urls = [f"https://{HOST}/org/ml-cicd.git", f"git@{HOST}:org/ml-cicd.git", f"https://{HOST}:443/org/ml-cicd.git"]
    env["GIT_CONFIG_COUNT"] = str(len(urls))
    for i, url in enumerate(urls):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{components.as_uri()}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = url
    # The `package` input installs ml-cicd in each job; here, from the checkout's wheel.
    variables = [f"MLCI_PACKAGE={wheel}[all]"]
    if images is not None:
        variables.append(f"MLCI_BUILDAH_ROOT={images.storage}")
    return GitlabLocal(binary, env, variables)
