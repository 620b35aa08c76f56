"""One serving process: the whole server (``--workers 1``), or a worker under the supervisor.

Alone, it binds first and then loads the model, so ``/health`` answers 200 and ``/ready``
503 meanwhile; it logs one line when the model is ready and one when it stops.

As a worker it inherits the listening socket and a control socket from the supervisor.
It loads the model without accepting anything (the supervisor answers for it meanwhile),
reports ``R`` (ready) or ``F`` + traceback (cannot load), and starts accepting when the
supervisor sends ``G``: so no connection ever reaches a worker that has no model. It
logs nothing in normal operation; the supervisor speaks for all workers.

SIGTERM: stop accepting, let in-flight requests finish, exit 0 (:data:`EXIT_CUT` if
some were cut at the drain timeout). A worker whose supervisor died stops the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
import traceback
from types import FrameType

from mlcicd.serving.balance import Balance

DRAIN_SECONDS = 30.0
EXIT_LOAD_FAILED = 1
# Drained at the timeout with requests still running: the supervisor reports it.
EXIT_CUT = 3
READY, FAILED, GO = b"R", b"F", b"G"
_PR_SET_PDEATHSIG = 1


def log(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} mlci-serve[{os.getpid()}]: {text}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def serve(args: argparse.Namespace, *, sock: socket.socket | None = None,
          control: socket.socket | None = None, balance: Balance | None = None) -> int:
    """Run until SIGTERM/SIGINT (or, as a worker, until the supervisor goes away)."""
    import prometheus_client

    from mlcicd.serving.metrics import ServerMetrics
    from mlcicd.serving.server import ModelHTTPServer
    from mlcicd.serving.service import ModelService

    worker = control is not None
    parent = os.getppid()
    if worker:
        _die_with_parent()
    prometheus_client.disable_created_metrics()  # *_created series: noise for every scrape
    service = ModelService(args.model_name, args.model_version, args.run_id)
    metrics = ServerMetrics(args.model_name, args.model_version, args.run_id)
    try:
        server = ModelHTTPServer((args.host, args.port), service, metrics, sock=sock, balance=balance,
                                 concurrency=args.concurrency)
    except OSError as exc:
        log(f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1

    stop = threading.Event()
    failed: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN if worker else on_signal)  # Ctrl-C reaches the supervisor
    started = time.monotonic()

    accepting = threading.Event()

    def accept() -> None:
        if stop.is_set():
            return
        accepting.set()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="http").start()

    def load() -> None:
        try:
            service.load(args.model_dir)
        except BaseException:
            failed.append(traceback.format_exc())
            if control is not None:
                with contextlib.suppress(OSError):
                    control.sendall(FAILED + failed[0].encode(errors="replace"))
            stop.set()
            return
        if control is None:
            log(f"model {args.model_name} v{args.model_version} ready on http://{args.host}:{args.port} "
                f"(loaded in {time.monotonic() - started:.1f} s)")
            return
        try:
            control.sendall(READY)
            if control.recv(1) != GO:  # the supervisor closed the channel: it is stopping
                stop.set()
                return
        except OSError:
            stop.set()
            return
        accept()

    if not worker:
        accept()
    # A daemon thread, so a SIGTERM during a slow load still ends the process promptly.
    threading.Thread(target=load, daemon=True, name="load").start()
    while not stop.wait(1.0):
        if worker and os.getppid() != parent:  # the supervisor is gone and PDEATHSIG is unavailable
            break
    server.stopping = True
    if accepting.is_set():
        server.shutdown()  # stop the accept loop (it would wait forever for one never started)
    server.server_close()  # close the listening socket: new connections are refused at once
    left = server.drain(DRAIN_SECONDS)
    if metrics.emf is not None:
        metrics.emf.close()  # the last counts reach CloudWatch too
    if failed:
        if not worker:
            log(f"could not load the model from {args.model_dir}:\n{failed[0]}")
        return EXIT_LOAD_FAILED
    if worker:
        if left:
            log(f"stopped with {left} requests cut after {DRAIN_SECONDS:.0f} s")
        return EXIT_CUT if left else 0
    log(f"stopped after a signal; {'all in-flight requests finished' if not left else f'{left} requests cut'}")
    return 0
