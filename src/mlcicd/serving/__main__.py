"""``python -m mlcicd.serving --model-dir DIR --port P --model-name N --model-version V``.

Binds first, then loads the model (``/health`` answers 200 and ``/ready`` 503 meanwhile).
SIGTERM: stop accepting, let in-flight requests finish, exit 0. Logs one line when the
model is ready and one when the server stops; none per request.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType

from mlcicd.net import is_loopback

DRAIN_SECONDS = 30.0


def _log(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} mlci-serve[{os.getpid()}]: {text}", file=sys.stderr, flush=True)


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        _log(f"refusing to bind {args.host}: the server has no authentication. Use --host 127.0.0.1, "
             "or pass --allow-remote behind a proxy that authenticates")
        return 2
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    import prometheus_client

    from mlcicd.serving.metrics import ServerMetrics
    from mlcicd.serving.server import ModelHTTPServer, ModelService

    prometheus_client.disable_created_metrics()  # *_created series: noise for every scrape
    service = ModelService(args.model_name, args.model_version, args.run_id)
    metrics = ServerMetrics(args.model_name, args.model_version, args.run_id)
    try:
        server = ModelHTTPServer((args.host, args.port), service, metrics)
    except OSError as exc:
        _log(f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1

    stop = threading.Event()
    failed: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                     name="http").start()

    started = time.monotonic()

    def load() -> None:
        try:
            service.load(args.model_dir)
        except BaseException:
            failed.append(traceback.format_exc())
            stop.set()
            return
        _log(f"model {args.model_name} v{args.model_version} ready on http://{args.host}:{args.port} "
             f"(loaded in {time.monotonic() - started:.1f} s)")

    # A daemon thread, so a SIGTERM during a slow load still ends the process promptly.
    threading.Thread(target=load, daemon=True, name="load").start()
    while not stop.wait(1.0):
        pass
    server.stopping = True
    server.shutdown()  # stop the accept loop
    server.server_close()  # close the listening socket: new connections are refused at once
    left = server.drain(DRAIN_SECONDS)
    if failed:
        _log(f"could not load the model from {args.model_dir}:\n{failed[0]}")
        return 1
    _log(f"stopped after a signal; {'all in-flight requests finished' if not left else f'{left} requests cut'}")
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Everything worth keeping is flushed; skipping interpreter teardown (mlflow, pandas, sklearn
    # modules and their atexit hooks) saves ~0.6 s per stop, which every traffic switch waits for.
    os._exit(status)
