"""A real web site under load, for the web kill harness and bench/bench_web.py.

`Gunicorn` starts gunicorn (sync workers) on a free loopback port and can SIGKILL one of its
workers; `start_load` runs a bounded load generator in a separate process. The generator opens one
connection per request (gunicorn's sync workers close every connection after the response; keep-alive
would change nothing there), speaks HTTP/1.1 to 127.0.0.1 only, and stops after `count` requests or
`seconds`, whichever comes first. This module imports nothing of Django: the generator process is
spawned and stays small.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

# What the generator records per request (the harness's `answers` array).
# OK: a 200 whose body is a page, not a True/False answer (the benchmark's views).
NOT_SENT, TRUE, FALSE, NO_ANSWER, HTTP_ERROR, OK = 0, 1, 2, 3, 4, 5


def gunicorn_available() -> bool:
    """Return whether gunicorn can be imported by this interpreter."""
    try:
        import gunicorn  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """One gunicorn master with `workers` sync workers serving `app` on 127.0.0.1."""

    def __init__(self, app: str, env: dict[str, str], log: IO, *, workers: int = 2, preload: bool = False) -> None:
        if not gunicorn_available():
            raise RuntimeError("gunicorn is not installed: pip install -e '.[test]' (or '.[bench]') installs it.")
        self.port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
               "--worker-class", "sync", "--timeout", "60", "--graceful-timeout", "10", "--log-level", "warning",
               "--chdir", str(ROOT), "--backlog", "256"]
        if preload:
            cmd.append("--preload")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers = workers

    def wait_ready(self, path: str = "/", timeout: float = 60.0) -> None:
        """Wait until every worker is up and one request is answered; raise if gunicorn died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode} while starting; see its log.")
            if len(self.worker_pids()) >= self.workers:
                try:
                    status, _ = request(self.port, path, timeout=5)
                except OSError:
                    status = 0
                if status:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer on port {self.port} within {timeout:.0f}s; see its log.")

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's live worker processes."""
        return children(self.proc.pid)

    def kill_worker(self, rng: random.Random) -> int | None:
        """SIGKILL one random worker (gunicorn starts a new one); return its pid, or None if none was up."""
        pids = self.worker_pids()
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: workers finish their request and exit normally)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def children(pid: int) -> list[int]:
    """Return the pids of the live child processes of `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


# Visitors as a site sees them (start_load(visitors=True)): browsers of several kinds, and referrers
# skewed like a site's — most visits direct or internal, then search engines, then many other sites,
# a few of them unique links.
AGENTS = [
    USER_AGENT,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 "
    "Edg/130.0.0.0",
]


def visitor_headers(i: int) -> str:
    """Return the User-Agent and Referer header lines of the i-th visitor (the same for the same i)."""
    rng = random.Random(i)
    agent = AGENTS[min(int(rng.expovariate(0.5)), len(AGENTS) - 1)]
    kind = rng.random()
    if kind < 0.35:
        referrer = None
    elif kind < 0.55:
        referrer = f"http://127.0.0.1/plain/{rng.randrange(50) + 1}/"
    elif kind < 0.75:
        referrer = f"https://www.google.com/search?q=tide+tables+{int(rng.expovariate(0.2))}&hl=en"
    elif kind < 0.82:
        referrer = f"https://duckduckgo.com/?q=harbour+{int(rng.expovariate(0.3))}"
    elif kind < 0.95:
        referrer = f"https://site{int(rng.expovariate(0.05))}.example/posts/"
    else:
        referrer = f"https://news.example/article/{i}"  # a unique link
    return f"User-Agent: {agent}\r\n" + (f"Referer: {referrer}\r\n" if referrer else "")


def request(port: int, path: str, timeout: float = 30.0, headers: str = "") -> tuple[int, bytes]:
    """GET `path` from 127.0.0.1:`port` on a new connection; return (status, body); raise OSError.

    `headers`: header lines ("Name: value" and CRLF each) sent instead of the default User-Agent.
    """
    lines = headers or f"User-Agent: {USER_AGENT}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}Connection: close\r\n\r\n".encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1."):
        raise ConnectionResetError("the connection closed without an answer")
    head, _, body = raw.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"\r\ntransfer-encoding: chunked" in lower:
        body = dechunk(body)
    elif b"\r\ncontent-length:" in lower:
        length = int(lower.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
        if len(body) != length:
            raise ConnectionResetError("the connection closed in the middle of the answer")
    return int(head[9:12]), body


def dechunk(body: bytes) -> bytes:
    """Return the payload of a chunked HTTP/1.1 body; raise ConnectionResetError if it was cut short."""
    out, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        try:
            size = int(body[pos:eol].split(b";")[0], 16) if eol >= 0 else -1
        except ValueError:
            size = -1
        if size < 0 or len(body) < eol + 2 + size:
            raise ConnectionResetError("the connection closed in the middle of the answer")
        if size == 0:
            return b"".join(out)
        out.append(body[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2


class Load:
    """A running load generator process and the arrays it fills."""

    def __init__(self, proc, progress, ok, answers, elapsed) -> None:
        self.proc, self.progress, self.ok, self.answers, self.elapsed = proc, progress, ok, answers, elapsed

    def done(self) -> bool:
        return not self.proc.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()
            raise RuntimeError("the load generator did not finish in time")


def start_load(port: int, path: str, *, count: int, seconds: float, concurrency: int = 8, rate: float = 0.0,
               items: int = 0, record: bool = False, visitors: bool = False) -> Load:
    """Start the generator: `count` GETs of path.format(n=...) (n from 1, or cycling over `items`).

    Stops after `count` requests or `seconds`. `rate` (requests/s, 0: as fast as answered) spaces them.
    With `record`, answers[n - 1] says what request n got (TRUE, FALSE, NO_ANSWER, HTTP_ERROR). With
    `visitors`, request i carries visitor_headers(i) (varied browsers and referrers).
    """
    ctx = multiprocessing.get_context("spawn")
    progress, ok, elapsed = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False), ctx.Value("d", 0.0, lock=False)
    answers = ctx.Array("b", count if record else 1, lock=False)
    args = (port, path, count, seconds, concurrency, rate, items, record, progress, ok, answers, elapsed, visitors)
    proc = ctx.Process(target=_generate, args=args, daemon=True)
    proc.start()
    return Load(proc, progress, ok, answers, elapsed)


def _generate(port, path, count, seconds, concurrency, rate, items, record, progress, ok, answers, elapsed, visitors) -> None:
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds
    state = {"next": 0}

    def take() -> int | None:
        with lock:
            i = state["next"]
            if i >= count or time.monotonic() >= deadline:
                return None
            state["next"] = i + 1
            return i

    def work() -> None:
        while (i := take()) is not None:
            if rate:
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            n = (i % items) + 1 if items else i + 1
            outcome = _one(port, path.format(n=n), visitor_headers(i) if visitors else "")
            with lock:
                progress.value += 1
                ok.value += outcome in (TRUE, FALSE, OK)
            if record:
                answers[i] = outcome

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed.value = time.monotonic() - started


def _one(port: int, path: str, headers: str = "") -> int:
    try:
        status, body = request(port, path, headers=headers)
    except (OSError, ValueError):  # refused, reset, cut short, or not HTTP at all
        return NO_ANSWER
    if status != 200:
        return HTTP_ERROR
    return {b"True": TRUE, b"False": FALSE}.get(body, OK)

