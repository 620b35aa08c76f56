"""``python -m mlcicd.serving --model-dir DIR --port P --model-name N --model-version V [--workers W]``.

``--workers`` (or ``MLCI_SERVE_WORKERS``; default ``auto``: the CPUs the process may use)
worker processes serve behind the one port; with 1 the server is a single process. Each worker
predicts ``--concurrency`` (or ``MLCI_SERVE_CONCURRENCY``; default 1) requests at once and
queues the rest in arrival order: CPU-bound models answer fastest one at a time, a model that
waits on I/O (a feature store, a remote call) wants more. Either
way ``/health`` answers 200 from the moment the port is bound and ``/ready`` 200 once the
model is loaded; SIGTERM drains in-flight requests and exits 0. One log line when the
model is ready and one when the server stops; none per request.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from mlcicd.net import is_loopback
from mlcicd.serving.cpus import CONCURRENCY_ENV, WORKERS_ENV, parse_concurrency, parse_workers
from mlcicd.serving.worker import log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlcicd.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="MLflow model directory (holds the MLmodel file)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding a non-loopback address (the server has no authentication)")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--workers", default=None,
                        help=f"worker processes behind the port: a number or `auto` (the usable CPUs); "
                        f"default ${WORKERS_ENV}, else auto")
    parser.add_argument("--concurrency", default=None,
                        help=f"requests each worker predicts at once, the rest in arrival order; "
                        f"default ${CONCURRENCY_ENV}, else 1")
    # Set by the supervisor for its workers: inherited listening socket and control channel.
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--control-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--balance", default=None, help=argparse.SUPPRESS)  # FILE:SLOT, see balance.py
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        log(f"refusing to bind {args.host}: the server has no authentication. Use --host 127.0.0.1, "
            "or pass --allow-remote behind a proxy that authenticates")
        return 2
    given = args.concurrency is not None
    try:
        args.concurrency = parse_concurrency(args.concurrency if given else os.environ.get(CONCURRENCY_ENV),
                                             where="--concurrency" if given else f"${CONCURRENCY_ENV}")
    except ValueError as exc:
        log(f"{exc}; e.g. --concurrency 1 (CPU-bound models), or 8 for a model that waits on I/O")
        return 2
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlcicd.serving import worker

    if args.control_fd is not None and args.listen_fd is not None:
        from mlcicd.serving.balance import Balance

        path, _, slot = (args.balance or "").rpartition(":")
        return worker.serve(args, sock=socket.socket(fileno=args.listen_fd),
                            control=socket.socket(fileno=args.control_fd),
                            balance=Balance(Path(path), int(slot)) if path else None)
    source = "--workers" if args.workers is not None else f"${WORKERS_ENV}"
    try:
        count = parse_workers(args.workers if args.workers is not None else os.environ.get(WORKERS_ENV),
                              where=source)
    except ValueError as exc:
        log(f"{exc}; e.g. --workers 2, or --workers auto for one per usable CPU")
        return 2
    if count == 1:
        return worker.serve(args)
    from mlcicd.serving import supervisor

    return supervisor.run(args, count)


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Everything worth keeping is flushed; skipping interpreter teardown (mlflow, pandas, sklearn
    # modules and their atexit hooks) saves ~0.6 s per stop, which every traffic switch waits for.
    os._exit(status)
