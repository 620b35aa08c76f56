"""The example project deployed with ``target: ecs``, each stage run from a fresh directory.

A hosted runner starts every job with a checkout of the repository and credentials, and
nothing else. :meth:`EcsProject.run` does the same: it copies the repository's files into a
new directory and runs ``mlci run <stage>`` there in a subprocess whose environment holds
only what a CI job would have (the machine's settings, AWS credentials for moto). What the
stages know of each other they learn from the MLflow tracking server and from AWS.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from alb_data_plane import DataPlane
from aws_rig import AwsInfra, MotoServer
from consumer import Consumer, production_users

from mlcicd.delivery.targets.alb import forward_weights
from mlcicd.delivery.targets.processes import free_port
from mlcicd.delivery.traffic import LoadGenerator
from mlcicd.registry import Registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "credit-risk"
# A plausible image reference: the rig runs the model from the registry, not the image.
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/credit-risk@sha256:" + "ab" * 32
_runs = itertools.count(1)
# Users' requests/s through the ALB, for a whole pipeline (steady: see EcsConsumer.steady_users).
# Not fewer: the latency bounds come from the stable's last 30 s before the bake, and at 20/s
# (fewer samples, a bake twice as long for the machine's load to change in) a healthy canary of a
# full `.ci/run` ended inconclusive on p50 (47% of its requests above the stable's p50 x 1.5).
ECS_USERS = 40.0


@dataclass
class StageRun:
    code: int
    log: str
    workdir: Path
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.report.get("outputs", {}))


@dataclass
class EcsProject:
    repo: Path  # the repository as committed: what every job checks out
    moto: MotoServer
    infra: AwsInfra
    plane: DataPlane
    tracking_uri: str
    model_name: str
    created_config: str  # mlci.yaml as created, before any test's configure()

    @classmethod
    def create(cls, root: Path, *, moto: MotoServer, tracking_uri: str, model_name: str,
               canary: dict[str, Any] | None = None, **ecs: Any) -> EcsProject:
        infra = AwsInfra.create("st")
        plane = DataPlane(infra, tracking_uri=tracking_uri, workdir=root / "aws").start()
        repo = root / "repo"
        repo.mkdir(parents=True)
        for name in ("data", "train.py", "mlci.yaml"):
            src = EXAMPLE / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name)
        cfg = yaml.safe_load((repo / "mlci.yaml").read_text())
        cfg["mlflow"] = {"model_name": model_name, "tracking_uri": tracking_uri}
        # The gate's single-row latency limit measures this shared machine's load, not the model.
        cfg["gate"]["thresholds"].pop("latency_p99_ms", None)
        use_ecs(cfg, infra, plane, canary=canary, **ecs)
        (repo / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        return cls(repo, moto, infra, plane, tracking_uri, model_name, (repo / "mlci.yaml").read_text())

    def configure(self, **changes: Any) -> None:
        """Change mlci.yaml in the repository (as a commit would): ``deploy={...}`` merges one level deep."""
        cfg = yaml.safe_load((self.repo / "mlci.yaml").read_text())
        for section, value in changes.items():
            for key, sub in value.items():
                if isinstance(sub, dict) and isinstance(cfg[section].get(key), dict):
                    cfg[section][key].update(sub)
                else:
                    cfg[section][key] = sub
        (self.repo / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def restore_config(self) -> None:
        """mlci.yaml back as created (a test's configure() changes undone)."""
        (self.repo / "mlci.yaml").write_text(self.created_config)

    def job_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLCI_", "MLFLOW_", "AWS_"))}
        return {**keep, **self.moto.env(), "MLFLOW_DISABLE_TELEMETRY": "true", "CI": "true"}

    def fresh(self) -> Path:
        """A new job's working directory: a checkout of the repository, nothing else."""
        workdir = self.repo.parent / f"job-{next(_runs)}"
        shutil.copytree(self.repo, workdir)
        return workdir

    def start(self, stage: str, *, env: dict[str, str] | None = None, **inputs: Any) -> tuple[subprocess.Popen[str],
                                                                                            Path]:
        workdir = self.fresh()
        argv = [str(Path(sys.executable).with_name("mlci")), "run", stage]
        for key, value in inputs.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.Popen(argv, cwd=workdir, env={**self.job_env(), **(env or {})}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return proc, workdir

    def run(self, stage: str, *, env: dict[str, str] | None = None, timeout: float = 600, **inputs: Any) -> StageRun:
        proc, workdir = self.start(stage, env=env, **inputs)
        log, _ = proc.communicate(timeout=timeout)
        return StageRun(proc.returncode, log, workdir, read_report(workdir, stage))

    def release(self, command: str) -> str:
        """train and gate (each a fresh job): the new challenger's version."""
        self.configure(train={"command": command})
        train = self.run("train")
        assert train.code == 0, train.log
        gate = self.run("gate", model_uri=train.outputs["model-uri"])
        assert gate.code == 0, gate.log
        return gate.outputs["model-version"]

    def registry(self) -> Registry:
        return Registry(self.tracking_uri, self.model_name)

    def users(self, rate: float = ECS_USERS) -> LoadGenerator:
        """Production traffic through the ALB (the same users as the local consumer tests)."""
        return production_users(self.repo, self.plane.endpoint, rate, steady=True)

    def stop(self) -> None:
        self.plane.stop()


class EcsConsumer(Consumer):
    """A consumer repository (tests/support/consumer.py) whose mlci.yaml deploys to the rig's ECS.

    Its users reach the model through the rig's ALB; what is deployed lives in moto and the
    MLflow registry only, so every CI job may run on a fresh runner.
    """

    plane: DataPlane
    infra: AwsInfra
    # The latency bounds come from the stable's last 30 s before the analysis (`lookback: 30` in
    # use_ecs): a trickle in that window and the full rate in the bake made a healthy canary look
    # ~1.5x slower on this two-core machine (a gitlab-ci-local run ended inconclusive). Real users
    # do not slow down while a deploy job starts; these do not either.
    steady_users = True

    @classmethod
    def create_on(cls, home: Path, *, model_name: str, tracking_uri: str, images: Any,
                  remote: str | None = None) -> EcsConsumer:
        base = Consumer.create(home / "repo", model_name=model_name, port=free_port(), tracking_uri=tracking_uri,
                               registry=images.registry, base_image=images.base, state_dir=home / "unused",
                               remote=remote)
        infra = AwsInfra.create("e2e")
        plane = DataPlane(infra, tracking_uri=tracking_uri, workdir=home / "aws").start()
        cfg = yaml.safe_load((base.root / "mlci.yaml").read_text())
        use_ecs(cfg, infra, plane)
        (base.root / "mlci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        consumer = cls(base.root, base.model_name, base.port, base.tracking_uri)
        consumer.plane, consumer.infra = plane, infra
        return consumer

    @property
    def endpoint(self) -> str:
        return self.plane.endpoint

    def stop_deployment(self) -> None:
        self.plane.stop()

    def answering_versions(self, n: int = 40) -> dict[str, int]:
        # The rig follows moto every 0.3 s, seconds late on a loaded machine (two e2e runs saw the
        # rolled-back version still answering): catch it up first, as an ALB applies a change at once.
        self.plane.step()
        return super().answering_versions(n)

    def weights(self) -> list[int]:
        """The listener's forward weights, sorted (``[100]``: one target group takes everything)."""
        import boto3

        elb = boto3.client("elbv2", region_name="eu-west-1")
        actions = elb.describe_listeners(ListenerArns=[self.infra.listener_arn])["Listeners"][0]["DefaultActions"]
        return sorted(forward_weights(actions).values())


def use_ecs(cfg: dict[str, Any], infra: AwsInfra, plane: DataPlane, *, canary: dict[str, Any] | None = None,
            **ecs: Any) -> None:
    """Point an mlci.yaml (as a dict) at the rig's ECS: ``target: ecs``, judged from CloudWatch."""
    cfg["deploy"]["target"] = "ecs"
    cfg["deploy"].pop("local", None)
    cfg["deploy"]["ecs"] = infra.ecs_config(**{"endpoint": plane.endpoint, "test_endpoint": plane.test_endpoint,
                                               "poll_interval": 0.5, "health_timeout": 120, **ecs})
    # The rig publishes ALB metrics at 1-second resolution as they happen: read them at once.
    # moto answers GetMetricData by scanning every datapoint it holds, inside the test process: on a
    # loaded machine a read can take longer than the product's 10 s (three in a row end a bake).
    cfg["deploy"]["canary"].update({"source": "cloudwatch",
                                    "sources": {"cloudwatch": {"period": 1, "delay": 2, "lookback": 30,
                                                               "read_timeout": 60}}},
                                   **(canary or {}))


def read_report(workdir: Path, stage: str) -> dict[str, Any]:
    import json

    path = workdir / "mlci-report" / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def ecs_project_fixture(scope: str = "function") -> Any:
    """The ``project`` fixture of the ECS tests: an EcsProject on the session's moto and MLflow server.

    ``scope="module"`` shares one project (its AWS resources, data plane and model) between a
    module's tests, which then start from a state they restore (see test_ecs_faults).
    """
    import pytest
    from runners import require

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def project(moto: MotoServer, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[EcsProject]:
        from mlcicd.delivery.targets.nginx import find_nginx
        from mlcicd.errors import ToolMissingError

        try:
            find_nginx()
        except ToolMissingError as exc:
            require(False, str(exc))
        created = EcsProject.create(tmp_path_factory.mktemp("ecs-project"), moto=moto, tracking_uri=mlflow_server.url,
                                    model_name=f"ecs-{uuid.uuid4().hex[:8]}")
        yield created
        created.stop()

    return project
