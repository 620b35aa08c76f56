"""The ``ecs`` deploy target: two ECS services behind an Application Load Balancer.

Services ``<service_name>-blue`` and ``<service_name>-green`` each run in their own target
group; the listener's (or one rule's) weighted forward action splits traffic between them
(:mod:`.alb`). Which colour is the stable slot and which the canary, and which model version
each serves, is written on the services as ECS tags (``mlci:slot``, ``mlci:model-version``...)
and on the task-definition revisions, so :meth:`EcsTarget.state` reads everything back from
AWS: any job, on any fresh runner, sees the same deployment. Nothing is kept on the runner.

Every mutating method is idempotent and converges after a crash at any point: it reads what
exists, creates only what is missing (target groups, services, task-definition revisions are
found by name and tags before anything is created), and traffic moves only after the new
service is stable and its targets are healthy. Promotion relabels the canary's service as the
stable slot and keeps the old one at zero tasks (slot ``standby``), so restoring the previous
champion re-uses its task definition and target group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlcicd.aws import arn_suffix, client, translated
from mlcicd.delivery.targets.alb import AlbRouter, RouterView
from mlcicd.delivery.targets.base import Backend, BackendUnhealthy, Release, Slot, TargetEnv, TargetState
from mlcicd.delivery.targets.ecs_config import COLORS, EcsConfig
from mlcicd.errors import TargetError, UsageError
from mlcicd.serving import emf
from mlcicd.serving.cpus import WORKERS_ENV

SLOT_TAG = "mlci:slot"
_RELEASE_TAGS = {"model_name": "mlci:model-name", "version": "mlci:model-version", "model_uri": "mlci:model-uri",
                 "run_id": "mlci:run-id", "image": "mlci:image"}
DEPLOYED_TAG = "mlci:deployed-at"
CONTAINER = "model"


@dataclass(frozen=True)
class ServiceView:
    color: str
    name: str
    exists: bool
    tags: dict[str, str]
    arn: str = ""
    desired: int = 0
    running: int = 0
    task_definition: str | None = None
    deployments: int = 0
    rollout_failed: bool = False
    events: tuple[str, ...] = ()

    @property
    def slot(self) -> str | None:
        return self.tags.get(SLOT_TAG) if self.exists else None

    def release(self) -> Release | None:
        if not self.tags.get(_RELEASE_TAGS["version"]):
            return None
        values = {field: self.tags.get(tag) or None for field, tag in _RELEASE_TAGS.items()}
        return Release(values["model_name"] or "", values["version"] or "", values["model_uri"] or "",
                       values["run_id"], values["image"])


class EcsTarget:
    name = "ecs"
    settings_type = EcsConfig

    def __init__(self, cfg: EcsConfig, env: TargetEnv | None = None, *, where: str = "mlci.yaml: deploy.ecs",
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        cfg.check()
        self.cfg, self.where = cfg, where
        self.ecs = client("ecs", cfg.region)
        self.elb = client("elbv2", cfg.region)
        key = "listener_rule_arn" if cfg.listener_rule_arn else "listener_arn"
        self.router = AlbRouter(self.elb, cfg.router_arn, where=f"{where}.{key}")
        self.clock, self.sleep = clock, sleep
        self._tg_cache: dict[str, str] = dict(cfg.target_groups)

    # -- reading ----------------------------------------------------------------------------
    def _services(self) -> dict[str, ServiceView]:
        names = [self.cfg.service(c) for c in COLORS]
        with translated("ecs:DescribeServices", f"{self.where}.cluster"):
            found = self.ecs.describe_services(cluster=self.cfg.cluster, services=names, include=["TAGS"])
        by_name = {s["serviceName"]: s for s in found.get("services", []) if s.get("status") != "INACTIVE"}
        views = {}
        for color, name in zip(COLORS, names, strict=True):
            svc = by_name.get(name)
            if svc is None:
                views[color] = ServiceView(color, name, False, {})
                continue
            tags = {t["key"]: t["value"] for t in svc.get("tags", [])}
            deployments = svc.get("deployments", [])
            views[color] = ServiceView(
                color, name, True, tags, svc["serviceArn"], int(svc.get("desiredCount", 0)),
                int(svc.get("runningCount", 0)), svc.get("taskDefinition"), len(deployments),
                any(d.get("rolloutState") == "FAILED" for d in deployments),
                tuple(e.get("message", "") for e in svc.get("events", [])[:3]))
        return views

    def _tasks(self, view: ServiceView, status: str) -> list[dict[str, Any]]:
        """The service's tasks (by its ``service:<name>`` group, which ECS sets on every task it starts)."""
        with translated("ecs:ListTasks", f"{self.where}.cluster"):
            arns = self.ecs.list_tasks(cluster=self.cfg.cluster, serviceName=view.name,
                                       desiredStatus=status).get("taskArns", [])
            found: list[dict[str, Any]] = []
            for i in range(0, len(arns), 100):
                found += self.ecs.describe_tasks(cluster=self.cfg.cluster, tasks=arns[i:i + 100]).get("tasks", [])
        return [t for t in found if t.get("group") == f"service:{view.name}"]

    def _health(self, view: ServiceView) -> tuple[bool, str, int]:
        """Serving: ``desired`` tasks of the service's task definition run, and each is a healthy target.

        Target health alone would count the previous revision's tasks during a rolling update, so
        the new revision's tasks are found first and matched to the target group by their addresses.
        """
        if not view.exists or view.desired <= 0:
            return False, "scaled to zero", 0
        running = [t for t in self._tasks(view, "RUNNING")
                   if t.get("taskDefinitionArn") == view.task_definition and t.get("lastStatus") == "RUNNING"]
        addresses = {d["value"] for t in running for a in t.get("attachments", []) for d in a.get("details", [])
                     if d.get("name") == "privateIPv4Address"}
        tg = self._target_group(view.color, create=False)
        states: dict[str, str] = {}
        if tg:
            with translated("elasticloadbalancing:DescribeTargetHealth", f"{self.where}.target_groups"):
                for d in self.elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]:
                    if d["Target"]["Id"] in addresses:
                        states[d["Target"]["Id"]] = d["TargetHealth"]["State"]
        healthy = sum(1 for s in states.values() if s == "healthy")
        ok = healthy >= view.desired and not view.rollout_failed
        revision = (view.task_definition or "?").rsplit("/", 1)[-1]
        detail = f"{len(running)}/{view.desired} tasks of {revision} running, {healthy} of them healthy targets"
        if view.rollout_failed:
            detail += "; the ECS deployment FAILED (circuit breaker)"
        if not ok:
            stopped = [t for t in self._tasks(view, "STOPPED") if t.get("taskDefinitionArn") == view.task_definition]
            reasons = sorted({str(t.get("stoppedReason") or "stopped") for t in stopped})
            if reasons:
                detail += f"; {len(stopped)} task(s) stopped: {'; '.join(reasons[:3])}"
            if view.events:
                detail += f"; latest service events: {' | '.join(view.events)}"
        return ok, detail, len(running)

    def _backend(self, slot: Slot, view: ServiceView, lb_dim: str) -> Backend | None:
        release = view.release()
        if release is None:
            return None
        tg = self._target_group(view.color, create=False) or ""
        healthy = self._health(view)[0]
        url = f"ecs://{self.cfg.cluster}/{view.name}#{view.tags.get(DEPLOYED_TAG, '')}"
        labels = {"service": view.name, "cluster": self.cfg.cluster, "color": view.color, "target_group_arn": tg,
                  "TargetGroup": arn_suffix(tg, "targetgroup/") if tg else "", "LoadBalancer": lb_dim}
        return Backend(slot, release, url, healthy, labels)

    def _roles(self, views: dict[str, ServiceView], route: RouterView | None = None) -> dict[str, str]:
        """slot -> colour, from the services' slot tags (``standby`` and ``idle`` services hold no slot)."""
        roles: dict[str, str] = {}
        for slot in ("stable", "canary"):
            colors = [c for c, v in views.items() if v.slot == slot]
            if len(colors) > 1 and route is not None:  # never written so, but pick the one with traffic
                colors.sort(key=lambda c: -route.percent(self._tg_cache.get(c)))
            if colors:
                roles[slot] = colors[0]
        return roles

    def state(self) -> TargetState:
        views = self._services()
        route = self.router.read()
        roles = self._roles(views, route)
        lb_dim = arn_suffix(route.load_balancer_arn, "loadbalancer/")
        backends = {slot: self._backend(slot, views[color], lb_dim) for slot, color in roles.items()}  # type: ignore[arg-type]
        canary_tg = self._target_group(roles["canary"], create=False) if "canary" in roles else None
        return TargetState(endpoint=self._endpoint(route) if route.weights else None, stable=backends.get("stable"),
                           canary=backends.get("canary"), canary_weight=route.percent(canary_tg) if canary_tg else 0,
                           drift=route.drift)

    def direct_url(self, slot: Slot) -> str:
        """The test listener, pointed at ``slot``'s target group only (users never reach it)."""
        if not self.cfg.test_listener_arn:
            raise UsageError("blue-green smoke checks need a listener that reaches the new version alone",
                             where=f"{self.where}.test_listener_arn",
                             fix="add a second listener (e.g. port 8443, reachable from the CI runners only) to "
                                 "the load balancer and set `test_listener_arn:` to it")
        color = self._roles(self._services()).get(slot)
        tg = self._target_group(color, create=False) if color else None
        if tg is None:
            raise UsageError(f"no {slot} service to reach", where=f"{self.where}.service_name",
                              fix="run deploy-canary first")
        test = AlbRouter(self.elb, self.cfg.test_listener_arn, where=f"{self.where}.test_listener_arn")
        view = test.read()
        # The test listener is ours alone: whatever it pointed at before is replaced.
        test.set_weights({tg: 1}, view=view, override_drift=True)
        return self.cfg.test_endpoint.rstrip("/") if self.cfg.test_endpoint else self._endpoint(view, configured=False)

    def _endpoint(self, route: RouterView, *, configured: bool = True) -> str:
        if self.cfg.endpoint and configured:
            return self.cfg.endpoint.rstrip("/")
        with translated("elasticloadbalancing:DescribeLoadBalancers", f"{self.where}.listener_arn"):
            lb = self.elb.describe_load_balancers(LoadBalancerArns=[route.load_balancer_arn])["LoadBalancers"][0]
        scheme = "https" if route.protocol == "HTTPS" else "http"
        default = 443 if scheme == "https" else 80
        return f"{scheme}://{lb['DNSName']}" + ("" if route.port == default else f":{route.port}")

    # -- target groups and task definitions -----------------------------------------------------
    def _target_group(self, color: str, *, create: bool = True) -> str | None:
        if color in self._tg_cache:
            return self._tg_cache[color]
        name = self.cfg.service(color)
        with translated("elasticloadbalancing:DescribeTargetGroups", f"{self.where}.target_groups"):
            try:
                found = self.elb.describe_target_groups(Names=[name])["TargetGroups"]
            except self.elb.exceptions.TargetGroupNotFoundException:
                found = []
        if found:
            self._tg_cache[color] = found[0]["TargetGroupArn"]
            return self._tg_cache[color]
        if not create:
            return None
        route = self.router.read()
        with translated("elasticloadbalancing:DescribeLoadBalancers", f"{self.where}.listener_arn"):
            vpc = self.elb.describe_load_balancers(LoadBalancerArns=[route.load_balancer_arn])["LoadBalancers"][0]
        with translated("elasticloadbalancing:CreateTargetGroup", f"{self.where}.target_groups.{color}"):
            tg = self.elb.create_target_group(
                Name=name, Protocol="HTTP", Port=self.cfg.container_port, VpcId=vpc["VpcId"], TargetType="ip",
                HealthCheckPath=self.cfg.health_check_path, HealthCheckIntervalSeconds=10,
                HealthyThresholdCount=2, UnhealthyThresholdCount=3, Matcher={"HttpCode": "200"},
                Tags=[{"Key": "mlci:service", "Value": name}])["TargetGroups"][0]
        self._tg_cache[color] = tg["TargetGroupArn"]
        return self._tg_cache[color]

    def _revisions(self, release: Release) -> list[tuple[str, dict[str, str]]]:
        """(ARN, tags) of the recent task-definition revisions that run ``release``'s model version."""
        with translated("ecs:ListTaskDefinitions", f"{self.where}.service_name"):
            arns = self.ecs.list_task_definitions(familyPrefix=self.cfg.task_family, status="ACTIVE", sort="DESC",
                                                  maxResults=25).get("taskDefinitionArns", [])
        found = []
        for arn in arns:
            with translated("ecs:DescribeTaskDefinition", f"{self.where}.service_name"):
                described = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            tags = {t["key"]: t["value"] for t in described.get("tags", [])}
            if tags.get(_RELEASE_TAGS["version"]) == release.version \
                    and tags.get(_RELEASE_TAGS["model_name"]) == release.model_name:
                found.append((str(arn), tags))
        return found

    def _task_definition(self, release: Release, image: str) -> str:
        """One revision per model version and image: found by its tags, registered only if missing."""
        family = self.cfg.task_family
        for arn, tags in self._revisions(release):
            if tags.get(_RELEASE_TAGS["image"]) == image:
                return arn
        cfg = self.cfg
        # The prediction mix as EMF log lines (awslogs turns them into metrics the cloudwatch source
        # reads); `environment` may name another namespace, matching deploy.canary.sources.cloudwatch.
        env = {"MLCI_MODEL_NAME": release.model_name, "MLCI_MODEL_VERSION": release.version,
               "MLCI_MODEL_URI": release.model_uri, emf.NAMESPACE_ENV: emf.DEFAULT_NAMESPACE,
               **({WORKERS_ENV: str(cfg.workers)} if cfg.workers else {}), **cfg.environment}
        container: dict[str, Any] = {
            "name": CONTAINER, "image": image, "essential": True, "memory": cfg.memory,
            "portMappings": [{"containerPort": cfg.container_port, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())]}
        if cfg.log_group:
            container["logConfiguration"] = {"logDriver": "awslogs", "options": {
                "awslogs-group": cfg.log_group, "awslogs-region": self.ecs.meta.region_name,
                "awslogs-stream-prefix": cfg.service_name, "awslogs-create-group": "true"}}
        extra: dict[str, Any] = {}
        if cfg.task_role_arn:
            extra["taskRoleArn"] = cfg.task_role_arn
        if cfg.execution_role_arn:
            extra["executionRoleArn"] = cfg.execution_role_arn
        with translated("ecs:RegisterTaskDefinition", f"{self.where}.service_name"):
            td = self.ecs.register_task_definition(
                family=family, networkMode="awsvpc", requiresCompatibilities=[cfg.launch_type],
                cpu=str(cfg.cpu), memory=str(cfg.memory), containerDefinitions=[container],
                tags=_ecs_tags(_release_tags(release, image)), **extra)["taskDefinition"]
        return str(td["taskDefinitionArn"])

    # -- services ---------------------------------------------------------------------------
    def _network(self) -> dict[str, Any]:
        return {"awsvpcConfiguration": {"subnets": list(self.cfg.subnets),
                                        "securityGroups": list(self.cfg.security_groups),
                                        "assignPublicIp": "ENABLED" if self.cfg.assign_public_ip else "DISABLED"}}

    def _tag_service(self, view: ServiceView, tags: dict[str, str]) -> None:
        arn = view.arn or self._services()[view.color].arn
        with translated("ecs:TagResource", f"{self.where}.service_name"):
            self.ecs.tag_resource(resourceArn=arn, tags=_ecs_tags(tags))
            stale = [k for k, v in tags.items() if not v and k in view.tags]
            if stale:  # ECS rejects empty values: a cleared field is an absent tag
                self.ecs.untag_resource(resourceArn=arn, tagKeys=stale)

    def _scale(self, view: ServiceView, count: int) -> None:
        if view.exists and view.desired != count:
            with translated("ecs:UpdateService", f"{self.where}.service_name"):
                self.ecs.update_service(cluster=self.cfg.cluster, service=view.name, desiredCount=count)

    def _wait_healthy(self, color: str, release: Release) -> ServiceView:
        deadline = self.clock() + self.cfg.health_timeout
        while True:
            view = self._services()[color]
            ok, detail, _ = self._health(view)
            if ok:
                return view
            if self.clock() >= deadline:
                raise BackendUnhealthy(
                    f"{release.model_name} v{release.version} on ECS service {view.name} did not become healthy "
                    f"within {self.cfg.health_timeout:.0f} s: {detail}. Traffic was not moved to it. Check the "
                    f"task logs{f' in {self.cfg.log_group}' if self.cfg.log_group else ''}, the target group's "
                    f"health check ({self.cfg.health_check_path} on port {self.cfg.container_port}) and the "
                    "security groups")
            self.sleep(self.cfg.poll_interval)

    # -- the Target protocol ----------------------------------------------------------------
    def ensure_backend(self, slot: Slot, release: Release) -> Backend:
        # A version deployed before (restoring the previous champion) runs the image it ran then.
        image = release.image or next((t[_RELEASE_TAGS["image"]] for _, t in self._revisions(release)
                                       if t.get(_RELEASE_TAGS["image"])), None)
        if not image or "@sha256:" not in image:
            raise UsageError(f"the ecs target runs images pinned by digest, got {image!r}", where="input image",
                             fix="run build-image first: it records the image it pushed on the model version, "
                             "where deploy-canary finds it; or pass its image-ref output (…@sha256:…) as the "
                             "deploy-canary input `image`")
        views = self._services()
        roles = self._roles(views)
        other = "canary" if slot == "stable" else "stable"
        color = roles.get(slot) or next(c for c in COLORS if c != roles.get(other))
        view = views[color]
        tg = self._target_group(color)
        td = self._task_definition(release, image)
        wanted = {**_release_tags(release, image), SLOT_TAG: slot}
        same = view.exists and view.task_definition == td and view.desired == self.cfg.desired_count \
            and all(view.tags.get(k) == v for k, v in wanted.items())
        if same and self._health(view)[2] < view.desired:
            # Serving this release but with tasks missing (crashed): replace them, as a re-run should.
            with translated("ecs:UpdateService", f"{self.where}.service_name"):
                self.ecs.update_service(cluster=self.cfg.cluster, service=view.name, forceNewDeployment=True)
        if not same:
            wanted[DEPLOYED_TAG] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if not view.exists:
                with translated("ecs:CreateService", f"{self.where}.service_name"):
                    self.ecs.create_service(
                        cluster=self.cfg.cluster, serviceName=view.name, taskDefinition=td,
                        desiredCount=self.cfg.desired_count, launchType=self.cfg.launch_type,
                        loadBalancers=[{"targetGroupArn": tg, "containerName": CONTAINER,
                                        "containerPort": self.cfg.container_port}],
                        networkConfiguration=self._network(), healthCheckGracePeriodSeconds=60,
                        propagateTags="SERVICE", enableECSManagedTags=True, tags=_ecs_tags(wanted))
            else:
                with translated("ecs:UpdateService", f"{self.where}.service_name"):
                    self.ecs.update_service(cluster=self.cfg.cluster, service=view.name, taskDefinition=td,
                                            desiredCount=self.cfg.desired_count)
                self._tag_service(view, wanted)
        view = self._wait_healthy(color, release)
        route = self.router.read()
        backend = self._backend(slot, view, arn_suffix(route.load_balancer_arn, "loadbalancer/"))
        assert backend is not None
        return backend

    def set_canary_weight(self, percent: int) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise UsageError(f"canary weight must be a whole number 0..100, got {percent!r}",
                             where="canary-weight", fix="e.g. canary-weight: 10")
        views = self._services()
        roles = self._roles(views)
        stable, canary = roles.get("stable"), roles.get("canary")
        if percent > 0 and canary is None:
            raise TargetError(f"cannot send {percent}% to the canary: no canary service is deployed")
        if canary and stable is None and percent not in (0, 100):
            raise TargetError(f"cannot split {percent}/{100 - percent}: there is no stable service, so the canary "
                              "takes 100% (a first release) or 0%")
        if canary and percent > 0:
            ok, detail, _ = self._health(views[canary])
            if not ok:
                raise BackendUnhealthy(f"not sending {percent}% to the canary {views[canary].name}: it is not healthy "
                                       f"({detail})")
        weights: dict[str, int] = {}
        if stable:
            weights[self._target_group(stable, create=False) or ""] = 100 - percent if canary else 100
        if canary:
            weights[self._target_group(canary, create=False) or ""] = percent
        weights.pop("", None)
        # Taking traffic off the canary is always safe, so it may override a foreign change.
        self.router.set_weights(weights, override_drift=percent == 0)

    def promote_canary(self) -> None:
        views = self._services()
        roles = self._roles(views)
        canary, stable = roles.get("canary"), roles.get("stable")
        if canary is None:
            if stable is not None:
                self._retire_standby(views)
                return
            raise TargetError("there is no canary to promote")
        self.set_canary_weight(100)
        if stable is not None:
            self._tag_service(views[stable], {SLOT_TAG: "standby"})  # first: never two stables
        self._tag_service(views[canary], {SLOT_TAG: "stable"})
        self._retire_standby(self._services())

    def _retire_standby(self, views: dict[str, ServiceView]) -> None:
        """The old stable keeps its service and task definition at zero tasks, for a fast restore."""
        for view in views.values():
            if view.slot == "standby":
                self._scale(view, 0)

    def remove_backend(self, slot: Slot) -> None:
        views = self._services()
        roles = self._roles(views)
        color = roles.get(slot)
        if color is None:
            return
        other = roles.get("canary" if slot == "stable" else "stable")
        if slot == "canary":
            self.set_canary_weight(0) if other else self.router.set_weights({}, override_drift=True)
        elif other:
            self.set_canary_weight(100)
        # Scaled to zero first: a crash before the tag leaves a slot without tasks, which reads as empty.
        self._scale(views[color], 0)
        self._tag_service(views[color], {SLOT_TAG: "idle"})

    def shutdown(self) -> None:
        """Stop serving: the listener answers 503 and every service runs zero tasks. The slot tags stay,
        so ``ensure_backend`` with the same release brings a slot back."""
        self.router.set_weights({}, override_drift=True)
        for view in self._services().values():
            self._scale(view, 0)


def _release_tags(release: Release, image: str) -> dict[str, str]:
    values = {"model_name": release.model_name, "version": release.version, "model_uri": release.model_uri,
              "run_id": release.run_id or "", "image": image}
    return {tag: values[field] for field, tag in _RELEASE_TAGS.items()}


def _ecs_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    # ECS rejects empty tag values.
    return [{"key": k, "value": v} for k, v in tags.items() if v]
