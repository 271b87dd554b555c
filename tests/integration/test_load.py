"""Load: 100 concurrent keep-alive scrapers for 15 s (LOAD_TEST_SECONDS) against the real agent
with every default collector; no failures, p99 reported, no thread or file
descriptor growth afterwards."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

from support import agent_server
from web.rawhttp import get, read_response

SCRAPERS = 100
DURATION = float(os.environ.get("LOAD_TEST_SECONDS", "15"))
# How long closed sessions may take to release their sockets (and any thread
# that started on the way to retire) before the counts are compared.
SETTLE = 10.0


def counts(pid: int) -> Tuple[int, int]:
    """(threads, open file descriptors) of a process."""
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def hammer(port: int, seconds: float) -> Tuple[List[float], List[str]]:
    """SCRAPERS workers, each on its own keep-alive connection, scraping
    /metrics for ``seconds``. Raw sockets keep the client's own cost low, so
    the latencies are mostly the agent's."""
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: List[float] = []
    failures: List[str] = []
    start = threading.Barrier(SCRAPERS)
    request = get("/metrics", "Accept-Encoding: gzip\r\n")

    def worker(_: int) -> None:
        mine: List[float] = []
        bad: List[str] = []
        sock = None
        start.wait()
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(request)
                status, headers, body = read_response(sock)
                if status != 200 or gzip.decompress(body).find(b"hostagent_collector_up") < 0:
                    bad.append(f"status {status}")
                if headers.get("connection") != "keep-alive":
                    sock.close()
                    sock = None
            except (OSError, ValueError) as exc:
                bad.append(f"{type(exc).__name__}: {exc}")
                if sock is not None:
                    sock.close()
                sock = None
            mine.append(time.perf_counter() - t0)
        if sock is not None:
            sock.close()
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    with ThreadPoolExecutor(SCRAPERS) as pool:
        list(pool.map(worker, range(SCRAPERS)))
    return latencies, failures


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_hundred_concurrent_scrapers(tmp_path, capsys):
    with agent_server(tmp_path, "{}\n") as server:
        server.start()
        pid = server.proc.pid
        port = int(server.base_url.rsplit(":", 1)[1])
        start_threads, start_fds = counts(pid)

        t0 = time.monotonic()
        latencies, failures = hammer(port, DURATION)
        elapsed = time.monotonic() - t0
        peak_threads, peak_fds = counts(pid)

        # Closed sessions end their connections; give the agent that long to settle.
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline and any(now > then for now, then in zip(counts(pid), (start_threads, start_fds))):
            time.sleep(0.2)
        end_threads, end_fds = counts(pid)
        busy_log = server.log()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    with capsys.disabled():
        print(
            f"\nload: {SCRAPERS} scrapers, {len(latencies)} requests in {elapsed:.1f}s "
            f"({len(latencies) / elapsed:.0f}/s), failures {len(failures)}, "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
            f"threads {start_threads}->{peak_threads}->{end_threads}, fds {start_fds}->{peak_fds}->{end_fds}"
        )
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:5]}"
    assert len(latencies) >= SCRAPERS * 10
    # The agent's routes answer on the event loop: load starts no threads.
    assert peak_threads <= start_threads + 2, (start_threads, peak_threads)
    assert end_threads <= start_threads + 2, (start_threads, end_threads)
    assert end_fds <= start_fds + 2, (start_fds, end_fds)
    assert "Traceback" not in busy_log
