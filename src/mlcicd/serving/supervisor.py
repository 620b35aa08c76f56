"""Several worker processes behind one port: a pre-fork supervisor.

Why processes: a prediction is CPU work under the GIL, so threads of one process take
turns on one core; worker processes run on all of them.

Why one inherited listening socket rather than ``SO_REUSEPORT``: the port stays bound
exclusively, so a second server started on the same port fails loudly instead of
silently taking half the traffic (a stale canary, say). Every worker polls the socket and
the one that accepts first gets the connection; ``balance.py`` makes that the worker with
the fewest open connections, so keep-alive pools spread evenly.

Lifecycle: bind, spawn the workers (fresh interpreters, not forks, so no lock or thread
of this process leaks into them), answer ``/health`` 200 and ``/ready``/``/invocations``
503 while they load (closing every connection), and hand the socket over once all have
loaded: from then on only workers with a model accept. A worker that dies later is
replaced; a model that cannot load stops everything with the reason, logged once. SIGTERM
is passed to every worker, each drains its in-flight requests, and the supervisor exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from mlcicd.serving import MULTIPROC_ENV
from mlcicd.serving.balance import Balance
from mlcicd.serving.worker import DRAIN_SECONDS, EXIT_CUT, FAILED, GO, READY, log

# A worker that keeps dying is not worth restarting forever: let the orchestrator see the crash.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STOP_GRACE = DRAIN_SECONDS + 5.0


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    control: socket.socket
    slot: int  # its counter in the connection-balance table (a replacement takes over the slot)
    ready: bool = False
    message: bytearray = field(default_factory=bytearray)


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of a worker: the supervisor's own options, without ``--workers``."""
    argv = [sys.executable, "-m", "mlcicd.serving", "--port", str(args.port), "--host", args.host,
            "--model-dir", args.model_dir, "--model-name", args.model_name, "--model-version", args.model_version,
            "--concurrency", str(args.concurrency)]
    if args.run_id:
        argv += ["--run-id", args.run_id]
    if args.allow_remote:
        argv.append("--allow-remote")
    return argv


def run(args: argparse.Namespace, workers: int) -> int:
    """Serve with ``workers`` processes until SIGTERM/SIGINT; the process's exit code."""
    shared = Path(tempfile.mkdtemp(prefix="mlci-serve-"))
    metrics_dir = shared / "metrics"
    metrics_dir.mkdir()
    # Before prometheus_client is imported anywhere: it picks its value store at import.
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    balance = shared / "connections"
    Balance.create(balance, workers)
    try:
        return Supervisor(args, workers, balance).run()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


class Supervisor:
    def __init__(self, args: argparse.Namespace, count: int, balance: Path) -> None:
        self.args, self.count, self.balance = args, count, balance
        self.workers: list[Worker] = []
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.handed_over = False
        self.failure: str | None = None  # why everything stops (logged once, exit 1)
        self.crashes: list[float] = []

    def run(self) -> int:
        import prometheus_client

        from mlcicd.serving.metrics import ServerMetrics
        from mlcicd.serving.server import ModelHTTPServer
        from mlcicd.serving.service import ModelService

        prometheus_client.disable_created_metrics()
        args = self.args
        # A service that never loads: until the hand-over this process answers "loading".
        service = ModelService(args.model_name, args.model_version, args.run_id)
        metrics = ServerMetrics(args.model_name, args.model_version, args.run_id)
        try:
            self.server = ModelHTTPServer((args.host, args.port), service, metrics)
        except OSError as exc:
            log(f"cannot listen on {args.host}:{args.port}: {exc}")
            return 1
        self.server.keep_alive = False
        # Every process polls, then accepts: the losers of a race must get EAGAIN, not block.
        self.server.socket.setblocking(False)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        self.selector.register(wake_r, selectors.EVENT_READ, None)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        started = time.monotonic()
        for slot in range(self.count):
            self.spawn(slot)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="http").start()
        while not self.stopping and self.failure is None:
            for key, _ in self.selector.select(timeout=0.5):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        wake_r.recv(4096)
                else:
                    self.read_control(key.data)
            self.reap()
            if not self.handed_over and self.failure is None and all(w.ready for w in self.workers):
                self.hand_over()
                log(f"model {args.model_name} v{args.model_version} ready on http://{args.host}:{args.port} "
                    f"with {self.count} workers (loaded in {time.monotonic() - started:.1f} s)")
        return self.stop()

    # -- workers ------------------------------------------------------------------------------
    def spawn(self, slot: int) -> None:
        ours, theirs = socket.socketpair()
        listen_fd, control_fd = self.server.socket.fileno(), theirs.fileno()
        argv = [*worker_argv(self.args), "--listen-fd", str(listen_fd), "--control-fd", str(control_fd),
                "--balance", f"{self.balance}:{slot}"]
        Balance(self.balance, slot).publish(0)  # a replacement starts with no connections
        proc = subprocess.Popen(argv, pass_fds=(listen_fd, control_fd), stdin=subprocess.DEVNULL)
        theirs.close()
        worker = Worker(proc, ours, slot)
        self.workers.append(worker)
        self.selector.register(ours, selectors.EVENT_READ, worker)

    def read_control(self, worker: Worker) -> None:
        try:
            data = worker.control.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(worker.control)
            if worker.message[:1] == FAILED and self.failure is None:
                self.failure = (f"could not load the model from {self.args.model_dir}:\n"
                                + worker.message[1:].decode(errors="replace"))
            return
        worker.message += data
        if worker.message[:1] == READY and not worker.ready:
            worker.ready = True
            if self.handed_over:  # a replacement: the others already serve
                self.go(worker)

    def drain_control(self, worker: Worker) -> None:
        """Whatever an exited worker wrote and we have not read yet (the end of a traceback)."""
        if worker.control.fileno() < 0:
            return
        worker.control.settimeout(1.0)
        with contextlib.suppress(OSError):
            while chunk := worker.control.recv(65536):
                worker.message += chunk

    def go(self, worker: Worker) -> None:
        with contextlib.suppress(OSError):
            worker.control.sendall(GO)

    def hand_over(self) -> None:
        # Stop this process's accept loop first; the socket stays open for the workers.
        self.server.shutdown()
        self.handed_over = True
        for worker in self.workers:
            self.go(worker)

    def reap(self) -> None:
        for worker in list(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            self.drain_control(worker)
            self.forget(worker)
            if not self.handed_over:
                # Still starting: the model (or the interpreter) cannot come up; no point retrying.
                if self.failure is None:
                    self.failure = (f"could not load the model from {self.args.model_dir}:\n"
                                    + worker.message[1:].decode(errors="replace") if worker.message[:1] == FAILED
                                    else f"a worker exited with code {code} before the model was loaded")
                return
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < RESTART_WINDOW] + [now]
            if len(self.crashes) > MAX_RESTARTS:
                self.failure = (f"stopping: workers died {len(self.crashes)} times within {RESTART_WINDOW:.0f} s "
                                f"(last exit code {code})")
                return
            log(f"worker {worker.proc.pid} exited with code {code}; starting a new one")
            self.spawn(worker.slot)

    def forget(self, worker: Worker) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(worker.control)
        worker.control.close()
        self.workers.remove(worker)

    # -- stopping -----------------------------------------------------------------------------
    def stop(self) -> int:
        self.server.stopping = True
        if not self.handed_over:
            self.server.shutdown()
        self.server.server_close()  # this process's copy of the listening socket
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
            worker.control.close()  # a worker still waiting for "go" stops when the channel closes
        deadline = time.monotonic() + STOP_GRACE
        codes = []
        for worker in self.workers:
            try:
                codes.append(worker.proc.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                codes.append(worker.proc.wait())
        left = self.server.drain(DRAIN_SECONDS)
        if self.failure is not None:
            log(self.failure)
            return 1
        cut = left + sum(1 for c in codes if c == EXIT_CUT)
        odd = [c for c in codes if c not in (0, EXIT_CUT)]
        detail = "all in-flight requests finished" if not cut else "some requests were cut"
        if odd:
            detail += f"; workers exited with {odd}"
        log(f"stopped after a signal; {detail}")
        return 0
