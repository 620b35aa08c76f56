"""``mlci demo``: the whole pipeline on the bundled example, on this machine.

The example project is copied into the work dir (its ``.mlci/`` state is kept, so a
second run finds the champion of the first). With no champion yet, a first release
is shipped and promoted; then a challenger goes through every stage while a load
generator plays users. ``--bad-canary`` trains a model that cannot handle missing
incomes: it passes the offline gate (the curated eval set has none) and fails on
live traffic, where 1 request in 10 lacks an income, so the canary is rolled back.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from mlcicd.ci.local import LocalAdapter
from mlcicd.config import load_config
from mlcicd.delivery.traffic import LoadGenerator, probe_versions, read_rows
from mlcicd.errors import EXIT_FAIL, EXIT_PASS, EXIT_USAGE
from mlcicd.operations import stop_target
from mlcicd.registry import Registry
from mlcicd.report import StageResult
from mlcicd.runner import execute

EXAMPLE_FILES = ("mlci.yaml", "train.py", "generate_data.py", "data")
MISSING_INCOME_EVERY = 10
DEMO_RATE = 50.0


def example_dir() -> Path:
    env = os.environ.get("MLCI_EXAMPLE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "examples" / "credit-risk"


class DemoAdapter(LocalAdapter):
    """Everything goes to the demo's log file; only the monitor's progress reaches the screen."""

    def __init__(self, log: Any) -> None:
        super().__init__({}, stream=log)

    def log(self, text: str) -> None:
        super().log(text)
        if text.startswith("[") and "s] canary" in text:
            click.echo("    " + text)


@dataclass
class Step:
    stage: str
    code: int
    seconds: float
    result: StageResult | None


class Demo:
    def __init__(self, project: Path, log: Any, port: int, build_image: bool = False) -> None:
        self.project = project
        self.want_image = build_image
        self.adapter = DemoAdapter(log)
        self.steps: list[Step] = []
        self.port = port
        self.env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLCI_CONFIG": str(project / "mlci.yaml"),
                    "MLCI_REPORT_DIR": str(project / "mlci-report")}
        for key in [k for k in self.env if k.startswith("MLCI_") and k not in ("MLCI_CONFIG", "MLCI_REPORT_DIR")]:
            del self.env[key]  # the demo decides every input itself

    def stage(self, stage: str, **inputs: Any) -> Step:
        started = time.monotonic()
        code, result = execute(stage, {k.replace("_", "-"): str(v) for k, v in inputs.items()},
                               env=self.env, ci=self.adapter)
        step = Step(stage, code, time.monotonic() - started, result)
        self.steps.append(step)
        icon = {0: "✅", 1: "❌", 3: "❔"}.get(code, "⚠️")
        lines = [line for line in result.summary.splitlines() if line.strip()] if result else []
        text = " ".join(lines[:2]) if lines else f"error (exit {code}); see {self.project}/demo.log"
        click.echo(f"  {icon} {stage:<15} {step.seconds:5.1f}s  {text}")
        return step

    def registry_aliases(self) -> dict[str, str]:
        return Registry.from_config(load_config(self.project / "mlci.yaml")).aliases()

    def traffic(self) -> Any:
        rows = read_rows(self.project / "data" / "eval.csv", drop=("default",))

        def upstream_outage(i: int, row: dict[str, Any]) -> dict[str, Any]:
            # Random per request, not every n-th: a strict period would alias with nginx's
            # weighted round-robin and send all (or none) of these rows to the canary.
            if random.Random(i).random() < 1 / MISSING_INCOME_EVERY:
                row["income"] = None
            return row

        return LoadGenerator(f"http://127.0.0.1:{self.port}", rows, rate=DEMO_RATE, workers=4,
                             mutate=upstream_outage)

    def release(self, train_command: str, canary_duration: float, label: str) -> str:
        """train -> gate -> build-image -> deploy-canary -> monitor-canary -> promote | rollback."""
        click.echo(f"\n{label}")
        train = self.stage("train", command=train_command)
        if train.code != EXIT_PASS or train.result is None:
            return "failed"
        gate = self.stage("gate", model_uri=train.result.outputs["model-uri"])
        if gate.code != EXIT_PASS or gate.result is None:
            return "rejected by the gate"
        self.build_image()
        deploy = self.stage("deploy-canary")
        if deploy.code != EXIT_PASS:
            return "failed"
        traffic = self.traffic().start()
        try:
            monitor = self.stage("monitor-canary", duration=canary_duration, generate_traffic=0)
            decision = monitor.result.outputs.get("decision") if monitor.result else "rollback"
            if decision == "promote":
                done = self.stage("promote")
                outcome = "promoted" if done.code == EXIT_PASS else "failed"
            else:
                self.stage("rollback")
                outcome = "rolled back"
            time.sleep(1.0)
        finally:
            stats = traffic.stop().as_dict()
        click.echo(f"    users sent {stats['sent']} requests: status codes {stats['codes']}, "
                   f"answered by versions {stats['versions']}, connection errors {stats['connection_errors']}")
        return outcome

    def build_image(self) -> None:
        from mlcicd.images.builders import available_builders

        if not self.want_image:
            click.echo("  ⏭️  build-image       -    skipped: the local target serves the model from the registry "
                       "(--build-image builds it; needs buildah and the base image)")
            return
        if not available_builders():
            click.echo("  ⏭️  build-image       -    no image builder here (apt-get install -y buildah)")
            return
        self.stage("build-image", push="false")

    def who_answers(self, n: int = 50) -> dict[str, int]:
        """Which versions answer users through nginx now."""
        rows = read_rows(self.project / "data" / "eval.csv", drop=("default",), limit=n)
        answers = probe_versions(f"http://127.0.0.1:{self.port}", rows, timeout=5)
        return dict(answers.versions)


def prepare_project(workdir: Path, port: int) -> Path:
    source = example_dir()
    if not (source / "mlci.yaml").is_file():
        raise click.ClickException(f"example project not found at {source}; set MLCI_EXAMPLE_DIR")
    project = workdir / "credit-risk"
    project.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        src, dst = source / name, project / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    cfg_path = project / "mlci.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["deploy"]["local"]["port"] = port
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return project


def run_demo(workdir: str, *, bad_canary: bool, keep_running: bool, canary_duration: float,
             port: int = 8080, build_image: bool = False) -> int:
    project = prepare_project(Path(workdir).resolve(), port)
    log_path = project / "demo.log"
    started = time.monotonic()
    with log_path.open("a") as log:
        demo = Demo(project, log, port, build_image=build_image)
        click.echo(f"ml-cicd demo in {project} (full log: {log_path})")
        try:
            validate = demo.stage("validate-data")
            if validate.code == EXIT_USAGE:
                return EXIT_USAGE
            if "champion" not in demo.registry_aliases():
                first = demo.release("python train.py", canary_duration, "First release (no champion yet):")
                if first != "promoted":
                    click.echo(f"first release {first}; stopping")
                    return EXIT_FAIL
            command = "python train.py --variant no-imputer" if bad_canary else "python train.py --C 0.5"
            kind = "a deliberately bad challenger (no imputer)" if bad_canary else "a new challenger"
            outcome = demo.release(command, canary_duration, f"Canary release of {kind}:")
            answers = demo.who_answers()
            aliases = demo.registry_aliases()
        finally:
            if not keep_running:
                with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                    stop_target(str(project / "mlci.yaml"))
    click.echo(f"\nOutcome: challenger {outcome}. Through nginx, {sum(answers.values())} requests were answered by "
               + ", ".join(f"v{v} ({n})" for v, n in sorted(answers.items())) + ".")
    click.echo("Registry aliases: " + ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())))
    config = project / "mlci.yaml"
    ending = (f"The champion keeps serving at http://127.0.0.1:{port}; `mlci down --config {config}` stops it."
              if keep_running else "Servers stopped.")
    click.echo(f"Total {time.monotonic() - started:.0f} s. {ending}")
    expected = "rolled back" if bad_canary else "promoted"
    return EXIT_PASS if outcome == expected else EXIT_FAIL

