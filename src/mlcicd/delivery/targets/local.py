"""The ``local`` deploy target: model servers as processes on 127.0.0.1 behind a real nginx.

Settings: ``deploy.local`` (:class:`LocalSettings`: ``port``, ``state_dir``).
Layout under ``<root>/<deploy.local.state_dir>`` (default ``.mlci/local``)::

    state.json        slots -> release, port, pid, model dir; the canary weight
    prometheus-targets.json  the model servers as a Prometheus file_sd target list
    models/<version>/ model files downloaded from the registry
    logs/             one log per server process: <slot>-<version>.log
    nginx/            nginx prefix: conf/nginx.conf, logs/, temp/

Crash safety: every operation changes reality first (start a process, reload nginx)
and records it afterwards, and every read checks the recorded PIDs and ``/ready``
instead of trusting the file. Processes are listed under ``spawned`` the moment they
start, so a crash between starting a server and recording it leaves no orphan: the
next operation stops whatever ``spawned`` holds that no slot uses. A lock file
serialises operations from concurrent jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import grp
import json
import os
import pwd
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.delivery.targets import processes
from mlcicd.delivery.targets.base import Backend, BackendUnhealthy, Release, Slot, TargetEnv, TargetState
from mlcicd.delivery.targets.nginx import NginxRouter, Upstream, render_config
from mlcicd.errors import TargetError, UsageError
from mlcicd.plugins import SettingsError

SLOTS: tuple[Slot, ...] = ("stable", "canary")
RELEASE_MARKER = ".mlci-release.json"


@dataclass
class LocalSettings:
    """``deploy.local``."""

    # Port of the nginx router on 127.0.0.1: the endpoint users send requests to.
    port: int = 8080
    # Where the target keeps its state, relative to the project root.
    state_dir: str = ".mlci/local"
    # Worker processes per model server. 1: stable, canary and the router share one machine
    # (a laptop, a runner), and each worker holds its own copy of the model and libraries.
    workers: int = 1

    def check(self) -> None:
        if not 1 <= self.port <= 65535:
            raise SettingsError("port", f"must be a TCP port (1..65535), got {self.port}", "e.g. `port: 8080`")
        if self.workers < 1:
            raise SettingsError("workers", f"must be at least 1, got {self.workers}", "e.g. `workers: 2`")


@dataclass
class SlotRecord:
    release: Release
    port: int
    pid: int | None
    model_dir: str
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"release": dataclasses.asdict(self.release), "port": self.port, "pid": self.pid,
                "model_dir": self.model_dir, "log": self.log}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SlotRecord:
        return cls(Release(**raw["release"]), int(raw["port"]), raw.get("pid"), raw["model_dir"], raw["log"])


@dataclass
class LocalState:
    canary_weight: int = 0
    slots: dict[str, SlotRecord] = field(default_factory=dict)
    # Every server process started and not yet stopped, used by a slot or not: {"pid", "port"}.
    spawned: list[dict[str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"format": 1, "canary_weight": self.canary_weight,
                "slots": {k: v.to_json() for k, v in self.slots.items()}, "spawned": self.spawned}


def server_marker(port: int) -> str:
    """A string only our server on ``port`` has in its command line (guards against PID reuse)."""
    return f"mlcicd.serving --port {port} --host"


class LocalTarget:
    name = "local"
    settings_type = LocalSettings

    def __init__(self, settings: LocalSettings, env: TargetEnv, *, ready_timeout: float = 60.0) -> None:
        self.registry = env.registry
        self.dir = (env.root / settings.state_dir).resolve()
        self.port = settings.port
        self.workers = settings.workers
        self.ready_timeout = ready_timeout
        self.router = NginxRouter(self.dir / "nginx", self.port)

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    # -- the state file ---------------------------------------------------------------------
    def _read(self) -> LocalState:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return LocalState()
        except (OSError, ValueError) as exc:
            raise TargetError(f"{self.state_file} is unreadable ({exc}); stop the processes it lists (their "
                              "PIDs are in the file and in nginx/logs/nginx.pid), then delete it") from exc
        return LocalState(int(raw.get("canary_weight", 0)),
                          {k: SlotRecord.from_json(v) for k, v in raw.get("slots", {}).items() if k in SLOTS},
                          list(raw.get("spawned", [])))

    def _write(self, st: LocalState) -> None:
        """Atomic: readers (and a crash) see the old file or the new one, never half of one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f"state.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(st.to_json(), indent=2) + "\n")
        os.replace(tmp, self.state_file)
        self._write_scrape_targets(st)

    @property
    def scrape_targets_file(self) -> Path:
        return self.dir / "prometheus-targets.json"

    def _write_scrape_targets(self, st: LocalState) -> None:
        """A Prometheus file_sd file listing the model servers, so Prometheus finds each new canary."""
        groups = [{"targets": [f"127.0.0.1:{rec.port}"],
                   "labels": {"job": "mlci-model", "slot": slot, "model_name": rec.release.model_name,
                              "model_version": rec.release.version}}
                  for slot, rec in sorted(st.slots.items())]
        tmp = self.scrape_targets_file.with_name(f"prometheus-targets.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        os.replace(tmp, self.scrape_targets_file)  # Prometheus watches the file: never show it half-written

    @contextlib.contextmanager
    def _locked(self) -> Iterator[LocalState]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                st = self._read()
                self._stop_strays(st)
                yield st
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reality ----------------------------------------------------------------------------
    def _alive(self, rec: SlotRecord) -> bool:
        return processes.pid_alive(rec.pid, expect=server_marker(rec.port))

    def _healthy(self, rec: SlotRecord) -> bool:
        return self._alive(rec) and processes.http_status(rec.url + "/ready", timeout=2.0) == 200

    def _backend(self, slot: Slot, rec: SlotRecord) -> Backend:
        return Backend(slot, rec.release, rec.url, self._healthy(rec))

    def state(self) -> TargetState:
        st = self._read()
        stable, canary = st.slots.get("stable"), st.slots.get("canary")
        return TargetState(
            endpoint=self.router.url if self.router.running() else None,
            stable=self._backend("stable", stable) if stable else None,
            canary=self._backend("canary", canary) if canary else None,
            canary_weight=st.canary_weight if canary else 0,
        )

    # -- processes --------------------------------------------------------------------------
    def _stop_strays(self, st: LocalState) -> None:
        """Stop processes we started that no slot uses (left by a crash or a failed start)."""
        used = {(r.pid, r.port) for r in st.slots.values()}
        strays = [p for p in st.spawned if (p["pid"], p["port"]) not in used]
        for proc in strays:
            processes.stop_pid(proc["pid"], expect=server_marker(proc["port"]))
        if strays:
            st.spawned = [p for p in st.spawned if p not in strays]
            self._write(st)

    def _stop(self, st: LocalState, rec: SlotRecord | None) -> None:
        if rec is None or rec.pid is None:
            return
        if any(r.pid == rec.pid for r in st.slots.values()):
            return  # relabelled into another slot (promotion): still serving
        processes.stop_pid(rec.pid, expect=server_marker(rec.port))
        st.spawned = [p for p in st.spawned if p["pid"] != rec.pid]
        self._write(st)

    def _fetch(self, release: Release) -> Path:
        """The release's model directory, downloaded once per version (reused on restarts)."""
        target = self.dir / "models" / release.version
        marker = target / RELEASE_MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("model_name") == release.model_name:
            return target
        registry = self.registry.for_model(release.model_name or self.registry.model_name)
        tmp = self.dir / "models" / f".{release.version}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        registry.download(release.version, tmp)
        found = sorted(p.parent for p in tmp.rglob("MLmodel"))
        if not found:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TargetError(f"the registry's files for {release.model_name} v{release.version} have no MLmodel "
                              f"file (downloaded to {tmp})")
        (found[0] / RELEASE_MARKER).write_text(json.dumps(dataclasses.asdict(release)))
        # Rename into place only when complete, so a half-downloaded directory is never used.
        shutil.rmtree(target, ignore_errors=True)
        found[0].rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _spawn(self, st: LocalState, slot: Slot, release: Release, model_dir: Path) -> SlotRecord:
        port = processes.free_port()
        log = self.dir / "logs" / f"{slot}-{release.version}.log"
        argv = [sys.executable, "-m", "mlcicd.serving", "--port", str(port), "--host", "127.0.0.1",
                "--model-dir", str(model_dir), "--model-name", release.model_name,
                "--model-version", release.version, "--workers", str(self.workers)]
        if release.run_id:
            argv += ["--run-id", release.run_id]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
        pid = processes.start_detached(argv, log, env=env, cwd=self.dir)
        st.spawned.append({"pid": pid, "port": port})
        self._write(st)
        return SlotRecord(release, port, pid, str(model_dir), str(log))

    def _wait_ready(self, st: LocalState, rec: SlotRecord) -> None:
        if processes.wait_http_ok(rec.url + "/ready", self.ready_timeout, pid=rec.pid):
            return
        alive = processes.pid_alive(rec.pid)
        self._stop(st, rec)
        what = f"did not become ready within {self.ready_timeout:.0f} s" if alive else "exited before it was ready"
        raise BackendUnhealthy(f"the model server for {rec.release.model_name} v{rec.release.version} {what}. "
                               f"Log {rec.log}, last lines:\n{processes.tail(Path(rec.log))}")

    # -- routing ----------------------------------------------------------------------------
    def _route(self, st: LocalState) -> None:
        """Make nginx serve the split ``st`` describes (starts nginx if needed; no-op if already so)."""
        stable, canary = st.slots.get("stable"), st.slots.get("canary")
        weight = st.canary_weight if stable else (100 if st.canary_weight > 0 else 0)
        upstreams = []
        if stable:
            upstreams.append(Upstream(f"stable v{stable.release.version}", stable.port,
                                      100 - weight if canary else 100))
        if canary:
            upstreams.append(Upstream(f"canary v{canary.release.version}", canary.port, weight))
        self.router.apply(render_config(self.port, upstreams, user=self._worker_user()))

    def _worker_user(self) -> str | None:
        """As root, nginx workers would switch to www-data and could not write temp files in our dir."""
        if os.geteuid() != 0:
            return None
        info = os.stat(self.dir)
        return f"{pwd.getpwuid(info.st_uid).pw_name} {grp.getgrgid(info.st_gid).gr_name}"

    # -- the Target protocol ----------------------------------------------------------------
    def ensure_backend(self, slot: Slot, release: Release) -> Backend:
        with self._locked() as st:
            old = st.slots.get(slot)
            if old and _same(old.release, release) and self._healthy(old):
                return self._backend(slot, old)
            new = self._spawn(st, slot, release, self._fetch(release))
            self._wait_ready(st, new)
            st.slots[slot] = new
            if self.router.running():
                self._route(st)  # the slot may carry traffic: point nginx at the new port first
            self._write(st)
            self._stop(st, old)
            return self._backend(slot, new)

    def set_canary_weight(self, percent: int) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise UsageError(f"canary weight must be a whole number 0..100, got {percent!r}",
                             where="canary-weight", fix="e.g. canary-weight: 10")
        with self._locked() as st:
            has_stable, has_canary = "stable" in st.slots, "canary" in st.slots
            if percent > 0 and not has_canary:
                raise TargetError(f"cannot send {percent}% to the canary: no canary backend is deployed")
            if has_canary and not has_stable and percent not in (0, 100):
                raise TargetError(f"cannot split {percent}/{100 - percent}: there is no stable backend, so the "
                                  "canary takes 100% (a first release) or 0%")
            st.canary_weight = percent if has_canary else 0
            self._route(st)
            self._write(st)

    def direct_url(self, slot: Slot) -> str:
        rec = self._read().slots.get(slot)
        if rec is None:
            raise UsageError(f"no {slot} server is running", where=f"deploy.local ({self.dir})",
                              fix="run deploy-canary first")
        return rec.url  # the server's own port, next to nginx

    def promote_canary(self) -> None:
        with self._locked() as st:
            canary, old = st.slots.get("canary"), st.slots.get("stable")
            if canary is None:
                if old is not None:
                    return
                raise TargetError("there is no canary to promote")
            # The same process becomes the stable slot: no restart, no cold model.
            st.slots = {"stable": canary}
            st.canary_weight = 0
            self._route(st)
            self._write(st)
            self._stop(st, old)

    def remove_backend(self, slot: Slot) -> None:
        with self._locked() as st:
            rec = st.slots.pop(slot, None)
            if rec is None:
                return
            st.canary_weight = 100 if slot == "stable" and "canary" in st.slots else 0
            if self.router.running():
                self._route(st)  # traffic leaves the slot before its server stops
            self._write(st)
            self._stop(st, rec)

    def shutdown(self) -> None:
        if not self.dir.exists():
            return
        with self._locked() as st:
            # nginx and the servers each take a grace period to stop: let them run concurrently.
            router = threading.Thread(target=self.router.stop, name="stop-nginx")
            router.start()
            servers = [(r.pid, server_marker(r.port)) for r in st.slots.values()]
            servers += [(p["pid"], server_marker(p["port"])) for p in st.spawned]
            processes.stop_pids(servers)
            router.join()
            for rec in st.slots.values():
                rec.pid = None
            st.spawned = []
            self._write(st)

    def pids(self) -> list[int]:
        """Every process this target may have running (servers and nginx master), for cleanup."""
        st = self._read()
        found = {p["pid"] for p in st.spawned} | {r.pid for r in st.slots.values() if r.pid}
        nginx = self.router.pid()
        return sorted(found | ({nginx} if nginx else set()))


def _same(a: Release, b: Release) -> bool:
    """Same model version (the image reference does not matter to local processes)."""
    return (a.model_name, a.version) == (b.model_name, b.version)
