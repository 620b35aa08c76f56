"""Model-server benchmark: ml-cicd's server against `mlflow models serve`, same model, same workers.

Two models, trained on the example project's data and logged with ``mlcicd.log_model``
(both servers load the same MLflow model directory): ``light``, a logistic regression on the
five numeric columns, whose prediction costs about as much as serving it, so the servers'
own overhead decides; and ``pipeline``, the example's imputer + scaler + one-hot encoder +
logistic regression, whose prediction dominates and is the same work in both servers.
``mlflow models serve --env-manager local -w W`` runs uvicorn with W worker processes; ours
runs ``python -m mlcicd.serving --workers W``.

Load: a closed loop over ``--connections`` keep-alive connections (8), each sending the next
request as soon as the previous answer is complete, with pre-encoded ``dataframe_split``
bodies of 1 or 100 rows of the evaluation data (numbers as floats, as production sends them;
MLflow's schema check refuses whole numbers for double columns). The client is one thread
with non-blocking sockets (a few microseconds per request), so it leaves the cores to the
servers. Each cell: warm-up, then ``--seconds`` of measurement; throughput is completed
requests per second, p99 the 99th percentile of the request latencies. All servers (both
kinds at every worker count) run at once and are measured in turns (an idle server costs
nothing, and back-to-back rounds see the same background load), ``--repeat`` rounds each;
the ratios are paired per round and reported as the median with the spread (min..max).
Both servers must answer every request with 200 and the same predictions. Requests per
CPU-second (CPU time of the server's process tree, from /proc) is printed too: unlike
wall-clock throughput it does not depend on the share of the cores that other programs on a
shared machine leave to the server.

Usage: .venv/bin/python bench/serve.py [--seconds 5] [--repeat 6] [--workers 1,2] [--rows 1,100]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "credit-risk"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(EXAMPLE))

TARGETS = {"throughput": 2.0, "p99": 0.5, "scaling": 1.7}
SERVERS = ("ml-cicd", "mlflow")


def train_model(home: Path, kind: str) -> tuple[Path, list[str]]:
    """A model logged as the train stage would; its MLflow model directory and input columns.

    ``light``: logistic regression on the five numeric columns (a prediction costs about as
    much as the serving around it, so the servers' own overhead decides). ``pipeline``: the
    example project's pipeline (imputer, scaler, one-hot encoder, logistic regression), where
    the model's own work dominates.
    """
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from train import NUMERIC, build  # examples/credit-risk/train.py

    import mlcicd

    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    if mlflow.get_experiment_by_name("bench") is None:
        mlflow.create_experiment("bench", artifact_location=home.as_uri())
    mlflow.set_experiment("bench")
    train = pd.read_csv(EXAMPLE / "data" / "train.csv")
    x, y = train.drop(columns=["default"]), train["default"]
    x = x.astype({c: "float64" for c in NUMERIC})
    if kind == "light":
        x = x[NUMERIC]
        model = LogisticRegression(max_iter=500).fit(x, y)
    else:
        model = build("default", 1.0).fit(x, y)
    uri = mlcicd.log_model(model, input_example=x.head(5))
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(home / kind))), list(x.columns)


def request_bodies(rows: int, columns: list[str], count: int = 16) -> list[bytes]:
    import pandas as pd
    from train import NUMERIC

    data = pd.read_csv(EXAMPLE / "data" / "eval.csv")[columns]
    data = data.astype({c: "float64" for c in NUMERIC})
    bodies = []
    for i in range(count):
        chunk = data.iloc[(i * rows) % max(1, len(data) - rows):][:rows]
        body = json.dumps({"dataframe_split": json.loads(chunk.to_json(orient="split", index=False))}).encode()
        bodies.append(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


def start(kind: str, model_dir: Path, workers: int, work: Path) -> Running:
    port = free_port()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    if kind == "ml-cicd":
        argv = [sys.executable, "-m", "mlcicd.serving", "--model-dir", str(model_dir), "--port", str(port),
                "--model-name", "bench", "--model-version", "1", "--workers", str(workers)]
        ready = "/ready"
    else:
        argv = [str(Path(bindir) / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                "-w", str(workers), "-p", str(port), "-h", "127.0.0.1"]
        ready = "/ping"
    log = work / f"{kind}-{workers}.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=2) as r:
                    if r.status == 200:
                        return Running(proc, port, log)
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    except BaseException:  # stopped while waiting (SIGTERM, Ctrl-C): the caller never gets the server to stop
        stop(Running(proc, port, log))
        raise
    stop(Running(proc, port, log))
    raise SystemExit(f"{kind} did not become ready:\n{log.read_text()[-3000:]}")


def stop(run: Running) -> None:
    with_group = run.proc.poll() is None
    if with_group:
        os.killpg(run.proc.pid, signal.SIGTERM)
        try:
            run.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(10)


def answer(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants alive now."""
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += kids.get(current, [])
    return total


@dataclass
class Result:
    completed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    answered: int = 0  # every response of the round, warm-up included (what the CPU time paid for)
    cpu_seconds: float = 0.0  # spent by the server's processes during the round

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Requests per CPU-second: the server's efficiency, whatever share of the CPUs it got."""
        return self.answered / self.cpu_seconds if self.cpu_seconds else float("nan")

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load(port: int, bodies: list[bytes], connections: int, warmup: float, seconds: float) -> Result:
    """Closed-loop keep-alive load from one thread; latencies of requests sent after the warm-up."""
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state[sock] = {"buf": bytearray(), "sent": 0.0, "i": i}
        sel.register(sock, selectors.EVENT_READ)
    result = Result()
    begin = time.perf_counter()
    measure_from, end = begin + warmup, begin + warmup + seconds

    def send(sock: socket.socket) -> None:
        st = state[sock]
        st["i"] += 1
        st["sent"] = time.perf_counter()
        sock.setblocking(True)  # loopback, a few KB: the kernel buffer takes it at once
        sock.sendall(bodies[st["i"] % len(bodies)])
        sock.setblocking(False)

    for sock in state:
        send(sock)
    while (now := time.perf_counter()) < end:
        for key, _ in sel.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            st = state[sock]
            chunk = sock.recv(262144)
            if not chunk:
                raise SystemExit("the server closed a keep-alive connection")
            buf = st["buf"]
            buf += chunk
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(buf[:head_end]).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(buf) < head_end + 4 + length:
                continue
            done = time.perf_counter()
            status = int(head.split(b" ", 2)[1])
            del buf[: head_end + 4 + length]
            result.answered += 1
            if st["sent"] >= measure_from and done <= end:
                result.completed += 1
                result.latencies.append(done - st["sent"])
                result.errors += status != 200
            send(sock)
    result.seconds = min(now, end) - measure_from
    for sock in state:
        sock.close()
    return result


def same_answers(model_dir: Path, columns: list[str], work: Path) -> None:
    probe = request_bodies(100, columns, count=1)[0]
    answers = {}
    for kind in SERVERS:
        server = start(kind, model_dir, 1, work)
        try:
            status, body = answer(server.port, probe)
        finally:
            stop(server)
        if status != 200:
            raise SystemExit(f"{kind} answered {status}: {body[:500]!r}")
        answers[kind] = json.loads(body)["predictions"]
    if answers["ml-cicd"] != answers["mlflow"]:
        raise SystemExit(f"the servers disagree: {answers}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def _exit_on_signal(signum: int, _frame: object) -> None:
    # The servers run in sessions of their own (a load spike on the bench must not reach them),
    # so a SIGTERM to the bench never reaches them either: unwind through the finally blocks that stop them.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--model", default="light,pipeline", help="light, pipeline or both (see train_model)")
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    workers = [int(w) for w in args.workers.split(",")]
    row_counts = [int(r) for r in args.rows.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mlci-bench-serve-"))
    try:
        print(f"load average before: {load_average()} on {os.cpu_count()} CPUs", flush=True)
        for kind in args.model.split(","):
            model_dir, columns = train_model(work, kind)
            same_answers(model_dir, columns, work)
            cells = measure(kind, model_dir, columns, workers, row_counts, args, work)
            report(kind, cells, row_counts, workers, args)
        print(f"load average after: {load_average()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(model: str, model_dir: Path, columns: list[str], workers: list[int], row_counts: list[int],
            args: argparse.Namespace, work: Path) -> dict[tuple[str, int, int], list[Result]]:
    """Every server (each kind at each worker count) up at once, measured in turns.

    An idle server costs nothing, and back-to-back rounds see the same background load (this
    machine is shared), so both the server ratios and the 1 -> 2 worker ratios are paired per round.
    """
    cells: dict[tuple[str, int, int], list[Result]] = {}
    servers = {(kind, w): start(kind, model_dir, w, work) for w in workers for kind in SERVERS}
    try:
        for rows in row_counts:
            bodies = request_bodies(rows, columns)
            for server in servers.values():  # every worker imports lazily: warm them all
                load(server.port, bodies, args.connections, 1.0, args.warmup)
            for rep in range(args.repeat):
                order = list(servers) if rep % 2 == 0 else list(servers)[::-1]
                for kind, w in order:
                    pid = servers[(kind, w)].proc.pid
                    cpu = tree_cpu_seconds(pid)
                    res = load(servers[(kind, w)].port, bodies, args.connections, 0.5, args.seconds)
                    res.cpu_seconds = tree_cpu_seconds(pid) - cpu
                    if res.errors:
                        raise SystemExit(f"{kind} answered {res.errors} requests with errors")
                    cells.setdefault((kind, rows, w), []).append(res)
                    print(f"  {model}, {w} workers, {rows:>3} rows, round {rep + 1}: {kind:8} "
                          f"{res.throughput:7.1f} req/s, p50 {res.quantile(0.5):6.1f} ms, "
                          f"p99 {res.quantile(0.99):6.1f} ms, {res.per_cpu_second:5.1f} req/CPU-s "
                          f"(load {load_average()})", flush=True)
    finally:
        for server in servers.values():
            stop(server)
    return cells


def report(model: str, cells: dict[tuple[str, int, int], list[Result]], row_counts: list[int],
           workers: list[int], args: argparse.Namespace) -> None:
    print(f"\nmodel {model}: {args.connections} keep-alive connections, {args.seconds:.0f} s per round, "
          f"median (min..max) of {args.repeat} rounds")
    print(f"{'rows':>4} {'workers':>7}  {'server':8} {'req/s':>22} {'p99 ms':>22} {'req/CPU-s':>22}")
    for rows in row_counts:
        for w in workers:
            for kind in SERVERS:
                res = cells[(kind, rows, w)]
                print(f"{rows:>4} {w:>7}  {kind:8} {spread([r.throughput for r in res], '{:.1f}'):>22} "
                      f"{spread([r.quantile(0.99) for r in res], '{:.1f}'):>22} "
                      f"{spread([r.per_cpu_second for r in res], '{:.1f}'):>22}")
    print()
    for rows in row_counts:
        for w in workers:
            ours, theirs = cells[("ml-cicd", rows, w)], cells[("mlflow", rows, w)]
            tput = [a.throughput / b.throughput for a, b in zip(ours, theirs, strict=True)]
            p99 = [a.quantile(0.99) / b.quantile(0.99) for a, b in zip(ours, theirs, strict=True)]
            ok = statistics.median(tput) >= TARGETS["throughput"] and statistics.median(p99) <= TARGETS["p99"]
            eff = [a.per_cpu_second / b.per_cpu_second for a, b in zip(ours, theirs, strict=True)]
            print(f"{'PASS' if ok else 'FAIL'} {model} {rows:>3} rows, {w} worker(s): throughput x{spread(tput)} "
                  f"(target >= {TARGETS['throughput']}), p99 x{spread(p99)} (target <= {TARGETS['p99']}); "
                  f"requests per CPU-second x{spread(eff)}")
        if 1 in workers and 2 in workers:
            one, two = cells[("ml-cicd", rows, 1)], cells[("ml-cicd", rows, 2)]
            scale = [b.throughput / a.throughput for a, b in zip(one, two, strict=True)]
            mine = [b.throughput / a.throughput for a, b in
                    zip(cells[("mlflow", rows, 1)], cells[("mlflow", rows, 2)], strict=True)]
            ok = statistics.median(scale) >= TARGETS["scaling"]
            print(f"{'PASS' if ok else 'FAIL'} {model} {rows:>3} rows, 1 -> 2 workers: ml-cicd x{spread(scale)} "
                  f"(target >= {TARGETS['scaling']}); mlflow x{spread(mine)}")


if __name__ == "__main__":
    sys.exit(main())
