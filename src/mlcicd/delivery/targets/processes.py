"""Process helpers for targets that run servers on this machine.

Everything here works by PID, never by process name, so nothing the user runs is
touched. A recorded PID may outlive its process (a reboot, a crash) and be reused
by an unrelated program, so liveness checks can also require a marker in the
process's command line before the PID is trusted or signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Health checks go straight to loopback: an http_proxy in the environment must not intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def start_detached(argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session with output appended to ``log_path``; return its PID.

    A new session keeps the server alive when the CI step or terminal that started it
    ends (no SIGHUP, no Ctrl-C of the parent's process group) and lets us signal the
    server's whole process group later.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # argv is a list built by the caller: no shell is involved
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    return proc.pid


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child that already exited.

    Without this a server we started and that died stays a zombie, and ``kill(pid, 0)``
    keeps reporting it alive.
    """
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None where /proc is not available."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return "" if not Path("/proc/self").exists() else None
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_zombie(pid: int) -> bool:
    """A process that exited but was not reaped yet (nginx's daemonised master, reparented to an
    init that reaps lazily) still answers ``kill(pid, 0)``; /proc tells it apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def children(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (empty where /proc is not available)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(stat.parent.name))
    return found


def cmdline(pid: int) -> str | None:
    """The command line (or the title a daemon set for itself), None if unknown or gone."""
    return _cmdline(pid) or None


def pid_alive(pid: int | None, expect: str | None = None) -> bool:
    """True if ``pid`` runs and (with ``expect``) its command line contains ``expect``."""
    if not pid or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else; the command-line check decides
    if _is_zombie(pid):
        return False
    if expect is None:
        return True
    cmdline = _cmdline(pid)
    if cmdline is None:
        return False
    # An empty string means "no /proc on this OS": trust kill(0) alone.
    return cmdline == "" or expect in cmdline


def wait_gone(pid: int, timeout: float, expect: str | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, expect):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_pid(pid: int | None, *, expect: str | None = None, timeout: float = 15.0, group: bool = False) -> bool:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL. True if the process is gone.

    ``group`` also signals the process group led by ``pid`` (a daemon's workers).
    Does nothing when the PID is not alive or does not match ``expect``: a stale PID
    must never hit an unrelated process.
    """
    if pid is None or not pid_alive(pid, expect):
        return True
    _signal(pid, signal.SIGTERM, group=False)
    if wait_gone(pid, timeout, expect):
        return True
    _signal(pid, signal.SIGKILL, group=group)
    return wait_gone(pid, 5.0, expect)


def stop_pids(targets: Iterable[tuple[int | None, str | None]], *, timeout: float = 15.0) -> bool:
    """:func:`stop_pid` for several processes at once: one grace period in total, not one each."""
    alive = [(pid, expect) for pid, expect in targets if pid and pid_alive(pid, expect)]
    for pid, _ in alive:
        _signal(pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + timeout
    for pid, expect in alive:
        if not wait_gone(pid, max(0.0, deadline - time.monotonic()), expect):
            _signal(pid, signal.SIGKILL, group=False)
    return all(wait_gone(pid, 5.0, expect) for pid, expect in alive)


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of a GET on a fresh connection, or None if nothing answered."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def http_text(url: str, timeout: float = 2.0) -> str | None:
    """Body of a GET that answered 200, or None."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.read().decode(errors="replace") if response.status == 200 else None
    except (OSError, ValueError):
        return None


def wait_http_ok(url: str, timeout: float, *, pid: int | None = None) -> bool:
    """Poll ``url`` until it answers 200. Gives up early when ``pid`` exits (it never will answer)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if http_status(url, timeout=min(2.0, max(0.1, deadline - time.monotonic()))) == 200:
            return True
        if pid is not None and not pid_alive(pid):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
