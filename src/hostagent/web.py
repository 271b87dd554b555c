"""The HTTP server the agent's endpoints (``routes.py``) are served by.

One asyncio loop on its own thread accepts and serves every connection, so an
idle or slow client costs a socket, not a thread, and the handler (the
agent's routes, which hand out bytes made beforehand) runs on the loop
itself. Every resource a client can claim is bounded, and no client can keep
a scraper out:

- open connections: ``max_connections`` (lowered to fit the open files
  limit). At the limit a newcomer is let in by closing the connection that
  matters least: the longest-idle keep-alive connection of a client that
  never authenticated, then the slowest connection that has not sent a
  whole request (or finished its TLS handshake), then the longest-idle
  authenticated one. Only when every connection has a request in flight is
  the newcomer refused. Once half the limit is in use, idle keep-alive
  connections are closed after ``BUSY_IDLE_TIMEOUT`` instead of
  ``idle_timeout``.
- requests in flight: ``max_requests``; beyond it 503 at once. A request is
  in flight from the end of its credential check until its response is
  written, so requests waiting for a bcrypt check (see ``webconfig``) never
  count against those already verified.
- TLS handshakes in progress: ``MAX_HANDSHAKES`` (each holds OpenSSL
  buffers); a newcomer displaces the slowest.
- time: ``read_timeout`` for the TLS handshake and each request head,
  ``write_timeout`` for each response, ``idle_timeout`` between requests.
- bytes: a request line of 8 KiB, 100 header lines in 16 KiB; bodies are
  never read.

The server exports its own counters (``families()``): requests by status
code, rejections by reason, requests in flight and connections by state.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import re
import resource
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Awaitable, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar

from .collectors.base import MetricSpec
from .config import SECTIONS
from .wording import counted

if TYPE_CHECKING:  # at run time ssl is loaded only when TLS is on (see cli.serve)
    import ssl

    from .promclient import Metric

log = logging.getLogger("hostagent.web")
access_log = logging.getLogger("hostagent.access")

_HAS_TIMEOUT = hasattr(asyncio, "timeout")  # asyncio.timeout() is new in 3.11
T = TypeVar("T")

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_HANDSHAKES = 64
BUSY_IDLE_TIMEOUT = 5.0
# A host holding more connections than this is crowding: at the limit it is
# never let in at another host's expense, and its connections go first.
FAIR_SHARE = 8
# Seconds a TLS handshake waiting on its client is kept at the handshake
# limit before a newcomer from any host may take its place (one from a
# crowding host's neighbour may at once): each handshake costs the server a
# signature, so a host must not churn through them.
PATIENCE = 1.0
# Connections looked at (oldest first, in each state) when choosing one to close.
SCAN = 16
# Connections accepted per wake-up of a listener, so one busy listener
# cannot starve the rest of the loop.
ACCEPT_BATCH = 64
# An episode of failed accepts (out of descriptors) is over after this many
# seconds without a failure: one warning at its start, one line at its end.
ACCEPT_EPISODE = 30.0
# asyncio (3.11+) gives every TLS connection a 256 KiB read buffer, the
# largest part of what an idle or half-open TLS connection costs. Request
# heads are at most 24 KiB and TLS records at most 16 KiB: 16 KiB reads do.
TLS_READ_SIZE = 16 * 1024
# The longest TLS record a client may start with (RFC 8446: 2^14 bytes of
# plaintext, plus room for a record that is not, as a ClientHello is not,
# encrypted).
TLS_MAX_RECORD = 16384 + 256
# After a storm of connections (this many at once, TRIM_AFTER since the last
# time), memory the allocator kept is handed back to the system, at most
# every TRIM_EVERY s. Ordinary loads (a few dozen scrapers) never trigger it.
TRIM_PEAK = 128
TRIM_AFTER = 256
TRIM_EVERY = 5.0
# Seconds a closing TLS connection may wait for the client's close_notify
# (asyncio's default is 30 s, holding the descriptor all that time).
TLS_SHUTDOWN_TIMEOUT = 2.0

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# Why the server turned a request or connection away (the label values of
# hostagent_http_rejected_total).
REJECT_REASONS = ("busy", "rate_limited", "auth_throttled", "connection_limit", "handshake_limit", "shed_idle", "shed_unfinished", "accept_error")

HTTP_REQUESTS = MetricSpec("hostagent_http_requests_total", "counter", "HTTP requests answered, by status code.", ("code",))
HTTP_REJECTED = MetricSpec(
    "hostagent_http_rejected_total", "counter",
    "Requests and connections turned away: busy (503, max_requests in flight), rate_limited (429, the web config's rate_limit), "
    "auth_throttled (429, too many credentials waiting for a bcrypt check), connection_limit (closed at once: nothing to make room with, "
    "or the client's host already holds more than its share), handshake_limit (closed before its TLS handshake: too many in progress), "
    "shed_idle and shed_unfinished (an idle connection, or one that had not sent a whole request, closed to make room), "
    "accept_error (accepting failed, e.g. out of file descriptors).",
    ("reason",),
)  # fmt: skip
HTTP_IN_FLIGHT = MetricSpec("hostagent_http_requests_in_flight", "gauge", "Requests being handled or written (credential checks not included).")
HTTP_CONNECTIONS = MetricSpec("hostagent_http_connections", "gauge", "Open client connections by state: reading (a request head or the first bytes), tls_handshake, active (a request in flight) or idle (kept alive between requests).", ("state",))
HTTP_TLS_ERRORS = MetricSpec("hostagent_http_tls_handshake_errors_total", "counter", "TLS handshakes that failed or timed out, and plain HTTP sent to the TLS port.")
HTTP_METRICS: Tuple[MetricSpec, ...] = (HTTP_REQUESTS, HTTP_REJECTED, HTTP_IN_FLIGHT, HTTP_CONNECTIONS, HTTP_TLS_ERRORS)


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: Dict[str, str]
    remote: str = ""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)
    close: bool = False
    rejected: str = ""  # one of REJECT_REASONS when the server turned the request away


def text_response(status: int, text: str, **kwargs: object) -> Response:
    return Response(status, (text + "\n").encode(), **kwargs)  # type: ignore[arg-type]


BUSY = text_response(503, "too many requests in flight", headers=[("Retry-After", "1")], rejected="busy")


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _origin_form(target: str) -> str:
    """The path and query of an absolute-form target (``http://host/path``),
    which RFC 9112 has servers accept; its authority is not ours to check."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return target  # another form: answered as an unknown path
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[cut:]
    return path if path.startswith("/") else "/" + path


def _check_content_length(value: str) -> None:
    """Bodies are never read, but a length that cannot be framed means the
    stream is not HTTP as sent (RFC 9112 6.3): answered 400, not served.
    Repeated headers arrive joined by commas; equal copies are allowed."""
    lengths = [part.strip() for part in value.split(",")]
    if not all(length.isascii() and length.isdigit() for length in lengths):
        raise HTTPError(400, "invalid Content-Length: must be a non-negative whole number")
    if len({int(length) for length in lengths}) > 1:
        raise HTTPError(400, "invalid Content-Length: more than one length given")


# A request line (method SP target SP version) and a header field line (a
# token, a colon, a value of visible characters, spaces and tabs), as RFC 9110
# and 9112 define them: control characters, NUL included, are refused.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e\x80-\xff]+) (HTTP/\d\.\d)\r?\n")
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*\r?\n")


# Handler: request -> response, run on the event loop (it must not block).
Handler = Callable[[Request], Response]
# Authenticator: None lets the request through; a Response (401, 429) refuses it.
Authenticator = Callable[[Request], Awaitable[Optional[Response]]]


class RateLimit:
    """A token bucket: one request per ``interval`` seconds on average, with
    bursts of up to ``burst``. Used on the loop thread only."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.interval)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Security:
    """What the web config decides; replaced whole when the file changes.

    ``check_peer`` gets a TLS connection's ``ssl.SSLObject`` after the
    handshake and returns why the client may not go on, or None."""

    ssl_context: Optional["ssl.SSLContext"] = None
    authenticate: Optional[Authenticator] = None
    headers: Tuple[Tuple[str, str], ...] = ()
    rate_limit: Optional[RateLimit] = None
    check_peer: Optional[Callable[[object], Optional[str]]] = None


def _web_default(key: str) -> object:
    return SECTIONS["web"][key].default


@dataclass
class Limits:
    """The server's limits; defaults are the web section's in config.py."""

    max_requests: int = _web_default("max_requests")  # type: ignore[assignment]
    max_connections: int = _web_default("max_connections")  # type: ignore[assignment]
    read_timeout: float = _web_default("read_timeout")  # type: ignore[assignment]
    idle_timeout: float = _web_default("idle_timeout")  # type: ignore[assignment]
    write_timeout: float = _web_default("write_timeout")  # type: ignore[assignment]

    @classmethod
    def from_config(cls, web: Mapping[str, object]) -> "Limits":
        """The limits from the validated web section of the configuration."""
        return cls(**{f.name: web[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def connection_budget(max_connections: int) -> int:
    """``max_connections``, lowered so that connections leave the rest of the
    agent file descriptors (an eighth of the limit, at least 32): out of
    descriptors, collectors could not open /proc files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - max(32, soft // 8)))


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await with a deadline; on Python 3.11+ without a task per wait."""
    if _HAS_TIMEOUT:
        async with asyncio.timeout(seconds):  # type: ignore[attr-defined]
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


# Connection states; a connection is in exactly one state's table, each table
# ordered by the time its connections entered it (oldest first).
READING, HANDSHAKE, ACTIVE, IDLE, IDLE_AUTHENTICATED = "reading", "tls_handshake", "active", "idle", "idle_authenticated"


class _Connection:
    __slots__ = ("sock", "host", "remote", "task", "state", "since", "authenticated", "shed", "handed_over")

    def __init__(self, sock: socket.socket, host: str, remote: str):
        self.sock = sock
        self.host = host
        self.remote = remote
        self.task: Optional[asyncio.Task] = None
        self.state: Optional[str] = None
        self.since = 0.0
        self.authenticated = False
        self.shed = False
        # Once asyncio has made a transport of the socket, the transport
        # closes it: closing it here too would free its number while asyncio
        # still has it registered, for the next connection to collide with.
        self.handed_over = False


class HTTPServer:
    """Serves ``handler`` on one or more listening sockets from a loop thread."""

    def __init__(
        self,
        host: Optional[str],
        port: int,
        handler: Handler,
        limits: Limits = Limits(),
        ssl_context: Optional["ssl.SSLContext"] = None,
        authenticate: Optional[Authenticator] = None,
        log_requests: bool = False,
        security: Optional[Security] = None,
    ):
        self.host = host
        self.port = port
        self.handler = handler
        self.limits = limits
        self.security = security or Security(ssl_context=ssl_context, authenticate=authenticate)
        # Whether the listeners speak TLS is fixed at start; the context,
        # credentials and headers may change (see set_security).
        self.tls = self.security.ssl_context is not None
        self.log_requests = log_requests
        self.max_connections = limits.max_connections  # lowered in start() to fit the file limit
        self.in_flight = 0  # requests past their credential check and not yet answered in full
        self._states: Dict[str, Dict[_Connection, None]] = {s: {} for s in (READING, HANDSHAKE, ACTIVE, IDLE, IDLE_AUTHENTICATED)}
        self._hosts: Dict[str, int] = {}  # open connections by client address
        self._codes: Dict[str, int] = {"200": 0}
        self._rejected: Dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.tls_errors = 0
        self._loop = asyncio.new_event_loop()
        self._thread: Optional[threading.Thread] = None
        self._spare_fds = 0
        self._opened = self._opened_at_trim = self._peak = 0
        self._last_trim = 0.0
        self._trim_scheduled = False
        self._accept_failing_since: Optional[float] = None  # the start of an episode of failed accepts
        self._accept_failed_at = 0.0
        self._accept_failures = 0
        self._accept_delay = 0.0
        self.sockets: List[socket.socket] = []

    # -- lifecycle -----------------------------------------------------------

    def bind(self) -> List[Tuple[str, int]]:
        """Open the listening sockets now, so errors surface before start."""
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen = set()
        for family, type_, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, type_, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
            except OSError:
                sock.close()
                for s in self.sockets:
                    s.close()
                self.sockets = []
                raise
            sock.listen(1024)  # a deep backlog: bursts of concurrent scrapers wait, not fail
            sock.setblocking(False)
            self.sockets.append(sock)
        return [s.getsockname()[:2] for s in self.sockets]

    def start(self) -> None:
        if not self.sockets:
            self.bind()
        self.max_connections = connection_budget(self.limits.max_connections)
        self._spare_fds = connection_budget(1 << 30) - self.max_connections  # descriptors beyond the limit
        if self.max_connections < self.limits.max_connections:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            log.warning("serving at most %d connections, not web.max_connections %d: the open files limit is %d", self.max_connections, self.limits.max_connections, soft)
        if self.tls:
            _small_tls_reads()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            for sock in self.sockets:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        ready.wait(10)

    def set_security(self, security: Security) -> None:
        """Serve new connections and requests with ``security`` from now on
        (a changed web config); connections already open keep their TLS
        session. Whether the server speaks TLS cannot change."""
        if (security.ssl_context is not None) != self.tls:
            raise ValueError("switching between HTTP and HTTPS needs a restart")
        self.security = security  # one reference swap: the loop sees the old or the new

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None:  # never started (e.g. bind failed)
            self._close_listeners()
            self._loop.close()
            return

        async def shutdown() -> None:
            for sock in self.sockets:
                if sock.fileno() != -1:
                    self._loop.remove_reader(sock.fileno())
            # The listeners first: no more connections completed into the
            # backlog while the rest unwinds.
            self._close_listeners()
            # Every task, not only connections being served: one accepted a
            # moment ago may not have started yet.
            me = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not me]
            for task in tasks:
                task.cancel()
            if tasks:
                # Let them unwind and close their sockets before the loop stops.
                await asyncio.wait(tasks, timeout=timeout / 2)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout)
        except Exception as exc:  # shutting down regardless
            log.debug("server shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._close_listeners()  # also when the shutdown above timed out
        if not self._thread.is_alive():
            self._loop.close()  # its selector and self-pipe, not left to the GC
        self._thread = None

    def _close_listeners(self) -> None:
        for sock in self.sockets:
            if sock.fileno() != -1:
                sock.close()

    # -- what the server reports about itself --------------------------------

    @property
    def connections(self) -> int:
        """Open client connections, TLS handshakes in progress included."""
        return sum(len(table) for table in self._states.values())

    def count(self, state: str) -> int:
        """Open connections in one state (READING, HANDSHAKE, ACTIVE, IDLE)."""
        if state == IDLE:
            return len(self._states[IDLE]) + len(self._states[IDLE_AUTHENTICATED])
        return len(self._states[state])

    def rejected(self, reason: str) -> int:
        return self._rejected[reason]

    def families(self) -> Iterator["Metric"]:
        """The server's own metrics (HTTP_METRICS); safe from any thread."""
        codes, rejected = dict(self._codes), dict(self._rejected)  # copied whole under the GIL
        requests = HTTP_REQUESTS.family()
        for code, n in sorted(codes.items()):
            requests.add_metric([code], n)
        yield requests
        refused = HTTP_REJECTED.family()
        for reason, n in rejected.items():
            refused.add_metric([reason], n)
        yield refused
        yield HTTP_IN_FLIGHT.single(self.in_flight)
        conns = HTTP_CONNECTIONS.family()
        for state in (READING, HANDSHAKE, ACTIVE, IDLE):
            conns.add_metric([state], self.count(state))
        yield conns
        yield HTTP_TLS_ERRORS.single(self.tls_errors)

    # -- connection table ----------------------------------------------------

    def _enter(self, conn: _Connection, state: str) -> None:
        if conn.shed:
            return
        if conn.state is not None:
            self._states[conn.state].pop(conn, None)
        conn.state = state
        conn.since = self._loop.time()
        self._states[state][conn] = None

    def _leave(self, conn: _Connection) -> None:
        if conn.state is not None:
            self._states[conn.state].pop(conn, None)
            conn.state = None
            left = self._hosts.pop(conn.host) - 1
            if left:
                self._hosts[conn.host] = left
            self._after_storm()

    def _after_storm(self) -> None:
        """Schedule a memory release once a storm of connections (TRIM_PEAK
        at once, TRIM_AFTER in all) has passed: open connections down to a
        quarter of their peak. At most every TRIM_EVERY s."""
        if self._trim_scheduled or self._peak < TRIM_PEAK or self._opened - self._opened_at_trim < TRIM_AFTER or self.connections * 4 > self._peak:
            return
        self._trim_scheduled = True
        self._loop.call_later(max(1.0, self._last_trim + TRIM_EVERY - self._loop.time()), self._trim)

    def _trim(self) -> None:
        # Connections that were cut leave reference cycles (a cancelled
        # task, its exception, its frames) that only a full collection frees.
        gc.collect()
        release_memory()
        self._trim_scheduled = False
        self._last_trim = self._loop.time()
        self._opened_at_trim = self._opened
        self._peak = self.connections

    def _oldest(self, state: str) -> Optional[_Connection]:
        return next(iter(self._states[state]), None)

    def _crowding(self, host: str) -> bool:
        return self._hosts.get(host, 0) > FAIR_SHARE

    def _oldest_few(self, *states: str) -> List[_Connection]:
        """The oldest SCAN connections of each of these states, oldest first."""
        found = [conn for state in states for conn, _ in zip(self._states[state], range(SCAN))]
        if len(states) > 1:
            found.sort(key=lambda conn: conn.since)
        return found

    @staticmethod
    def _waiting_on_client(conn: _Connection) -> bool:
        """False if the client has answered: its bytes wait in the kernel for
        a busy loop to get to them, and the client is not the slow one."""
        return conn.state in (IDLE, IDLE_AUTHENTICATED) or not conn.handed_over or not _has_unread_bytes(conn.sock)

    def _victim(self, host: str) -> Optional[Tuple[_Connection, str]]:
        """The connection to close to make room for a newcomer from ``host``,
        and why; None to turn the newcomer away.

        By kind: idle connections of clients that never authenticated, then
        unfinished ones (no whole request or TLS handshake yet), then idle
        authenticated ones. Among them a crowding host's go first, and a
        crowding newcomer only takes the place of its own host's."""
        tiers = (((IDLE,), "shed_idle"), ((READING, HANDSHAKE), "shed_unfinished"), ((IDLE_AUTHENTICATED,), "shed_idle"))
        if self._crowding(host):
            return next(((conn, why) for states, why in tiers for conn in self._oldest_few(*states)
                         if conn.host == host and self._waiting_on_client(conn)), None)  # fmt: skip
        fallback = None
        for states, why in tiers:
            for conn in self._oldest_few(*states):
                if not self._waiting_on_client(conn):
                    continue
                if self._crowding(conn.host):
                    return conn, why
                fallback = fallback or (conn, why)
        return fallback

    def _handshake_victim(self, host: str) -> Optional[_Connection]:
        """The TLS handshake to give up for a newcomer from ``host`` at the
        handshake limit, or None. Only handshakes waiting on their client
        qualify: of a crowding host for a newcomer that is not, of anyone
        once they have waited PATIENCE."""
        waited = self._loop.time() - PATIENCE
        crowding = self._crowding(host)
        for conn in self._oldest_few(HANDSHAKE):
            if crowding and conn.since > waited:
                break  # the rest are younger still
            if (conn.since <= waited or not crowding and self._crowding(conn.host)) and self._waiting_on_client(conn):
                return conn
        return None

    def _shed(self, conn: _Connection, reason: str) -> None:
        """Close ``conn`` to make room: out of the table now, its socket
        closed when its task unwinds (at the loop's next turn)."""
        self._leave(conn)
        conn.shed = True
        self._rejected[reason] += 1
        if conn.task is not None:
            conn.task.cancel()

    def _close_idle_when_busy(self) -> None:
        if self.connections * 2 < self.max_connections:
            return
        cutoff = self._loop.time() - min(BUSY_IDLE_TIMEOUT, self.limits.idle_timeout)
        for state in (IDLE, IDLE_AUTHENTICATED):
            while True:
                conn = self._oldest(state)
                if conn is None or conn.since > cutoff:
                    break
                self._shed(conn, "shed_idle")

    # -- accepting -----------------------------------------------------------
    #
    # Connections, HTTP and HTTPS alike, are accepted here rather than by
    # asyncio.start_server (with ssl= and ssl_handshake_timeout= for TLS),
    # which would be shorter but cannot do what the limits need: it hands a
    # connection over only once its TLS handshake is done, so the limit could
    # neither count nor choose handshakes in progress, and it can only refuse
    # a newcomer, not close another connection to make room; it starts the
    # handshake (and allocates its buffers) at accept, before junk or plain
    # HTTP can be told from TLS, so no 400 for plain HTTP on the TLS port and
    # no bound on TLS memory; its handshake failures reach the loop's
    # exception handler rather than a debug line naming the client; and out
    # of file descriptors it logs a traceback per attempt.

    def _accept(self, listener: socket.socket) -> None:
        made_room = 0
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            self._accept_delay = 0.0
            sock.setblocking(False)
            made_room += self._admit(sock, peer)
            if made_room > self._spare_fds:
                # The descriptors of connections closed to make room are
                # freed at the loop's next turn: accept more after that.
                break

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> None:
        """Out of descriptors or memory: accepting again at once would spin.
        Said once per episode; an idle connection is closed to make room and
        the listener rests a moment (longer each time nothing could be closed)."""
        self._rejected["accept_error"] += 1
        now = self._loop.time()
        self._accept_failed_at = now
        if self._accept_failing_since is None:
            self._accept_failing_since = now
            self._accept_failures = 0
            resource_short = exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
            log.warning("cannot accept connections: %s (%d open)%s", exc.strerror or exc, self.connections,
                        "; closing idle connections and retrying" if resource_short else "; retrying")  # fmt: skip
            self._loop.call_later(ACCEPT_EPISODE, self._accept_episode_over)
        self._accept_failures += 1
        victim = self._victim("")  # a newcomer from nowhere in particular: crowding hosts pay first
        if victim is not None:
            self._shed(*victim)
            self._accept_delay = 0.01
        else:
            self._accept_delay = min(max(self._accept_delay * 2, 0.1), 1.0)
        self._loop.remove_reader(listener.fileno())
        self._loop.call_later(self._accept_delay, self._resume_accepting, listener)

    def _accept_episode_over(self) -> None:
        """Said once accepting has gone ACCEPT_EPISODE seconds without failing."""
        quiet = self._loop.time() - self._accept_failed_at
        if quiet < ACCEPT_EPISODE:
            self._loop.call_later(ACCEPT_EPISODE - quiet, self._accept_episode_over)
            return
        assert self._accept_failing_since is not None
        log.info("accepting connections again; %s failed over %.0fs", counted(self._accept_failures, "attempt"), self._accept_failed_at - self._accept_failing_since)
        self._accept_failing_since = None

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener.fileno() != -1:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _admit(self, sock: socket.socket, peer: object) -> bool:
        """Serve the new connection; True if another was closed to make room."""
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self._close_idle_when_busy()
        shed = False
        if self.tls and len(self._states[HANDSHAKE]) >= MAX_HANDSHAKES and self._crowding(host) and self._handshake_victim(host) is None:
            # It would be turned away at the handshake limit: say so now,
            # before it costs a task and three looks at its first bytes.
            self._rejected["handshake_limit"] += 1
            sock.close()
            return False
        if self.connections >= self.max_connections:
            victim = self._victim(host)
            if victim is None:
                self._rejected["connection_limit"] += 1
                sock.close()  # requests in flight everywhere, or a crowding host's own turn
                return False
            self._shed(*victim)
            shed = True
        conn = _Connection(sock, host, _address(peer))
        self._hosts[host] = self._hosts.get(host, 0) + 1
        self._enter(conn, READING)
        self._opened += 1
        self._peak = max(self._peak, self.connections)
        conn.task = self._loop.create_task(self._connection(conn))
        return shed

    async def _connection(self, conn: _Connection) -> None:
        writer: Optional[asyncio.StreamWriter] = None
        try:
            reader = asyncio.StreamReader(limit=MAX_REQUEST_LINE, loop=self._loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=self._loop)
            if self.tls:
                transport = await self._tls_handshake(conn, protocol)
                if transport is None:
                    return
            else:
                conn.handed_over = True
                transport, _ = await self._loop.connect_accepted_socket(lambda: protocol, conn.sock)
            writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
            await self._serve(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):  # ssl.SSLError is an OSError
            pass  # the client went away or spoke garbage: nothing to answer
        except asyncio.CancelledError:
            pass  # shed to make room, or the server is stopping
        finally:
            self._leave(conn)
            if writer is None:
                if not conn.handed_over:
                    conn.sock.close()
            elif conn.shed:
                writer.transport.abort()
            else:
                try:
                    writer.close()
                except Exception:  # already torn down
                    pass

    # -- TLS -----------------------------------------------------------------

    async def _tls_handshake(self, conn: _Connection, protocol: asyncio.Protocol) -> Optional[asyncio.Transport]:
        """Wait for the client's whole first TLS record (plain HTTP gets a
        400), then hand the socket to asyncio for the handshake; the
        transport, or None if it failed.

        Until that record is in, a connection costs a socket and no TLS
        state: junk and half-sent hellos never reach OpenSSL."""
        started = self._loop.time()
        received = b""
        try:
            received = await _within(self._peek(conn.sock, 1), self.limits.read_timeout)
            if not received:
                return None  # closed without a word
            if received.isalpha():  # a TLS record starts with 0x16, an HTTP request with a method
                self.tls_errors += 1
                await self._refuse_plain_http(conn.sock, conn.remote)
                return None
            left = max(self.limits.read_timeout - (self._loop.time() - started), 0.01)
            received = await _within(self._peek(conn.sock, 5), left)
            if len(received) < 5 or received[0] != 0x16 or received[1] != 3 or int.from_bytes(received[3:5], "big") > TLS_MAX_RECORD:
                raise ConnectionError("not a TLS handshake record" if len(received) == 5 else "closed within the record header")
            whole = 5 + int.from_bytes(received[3:5], "big")
            left = max(self.limits.read_timeout - (self._loop.time() - started), 0.01)
            if len(await _within(self._peek(conn.sock, whole), left)) < whole:
                raise ConnectionError("closed before its ClientHello was complete")
            if len(self._states[HANDSHAKE]) >= MAX_HANDSHAKES:
                victim = self._handshake_victim(conn.host)
                if victim is None:
                    self._rejected["handshake_limit"] += 1
                    return None  # every handshake is young or answering: this one waits no turn
                self._shed(victim, "shed_unfinished")
            self._enter(conn, HANDSHAKE)
            left = max(self.limits.read_timeout - (self._loop.time() - started), 0.01)
            context = self.security.ssl_context
            extra = {"ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT} if sys.version_info >= (3, 11) else {}
            conn.handed_over = True
            transport, _ = await self._loop.connect_accepted_socket(lambda: protocol, conn.sock, ssl=context, ssl_handshake_timeout=left, **extra)
        except asyncio.TimeoutError:
            self.tls_errors += 1
            what = "no complete ClientHello" if received else "nothing received"
            log.debug("TLS handshake with %s failed: %s within %gs", conn.remote, what, self.limits.read_timeout)
            return None
        except OSError as exc:  # ssl.SSLError is an OSError
            self.tls_errors += 1
            log.debug("TLS handshake with %s failed: %s", conn.remote, _handshake_error(exc))
            return None
        check = self.security.check_peer
        refusal = check(transport.get_extra_info("ssl_object")) if check is not None else None
        if refusal:
            self.tls_errors += 1
            log.debug("TLS client %s refused: %s", conn.remote, refusal)
            transport.abort()
            return None
        self._enter(conn, READING)
        return transport  # type: ignore[return-value]

    async def _peek(self, sock: socket.socket, size: int) -> bytes:
        """The first ``size`` bytes the client sent, left in place for the
        handshake; fewer if it closed before sending them all."""
        # The kernel wakes the loop only once that much has arrived (or the
        # connection ended), not at every packet.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
        try:
            woken = False
            while True:
                try:
                    data = sock.recv(size, socket.MSG_PEEK)
                except (BlockingIOError, InterruptedError):
                    data = None
                if data is not None and (len(data) >= size or not data or woken):
                    return data  # all of it, or less after a wake-up: the client closed
                readable = self._loop.create_future()
                self._loop.add_reader(sock.fileno(), lambda: readable.done() or readable.set_result(None))
                try:
                    await readable
                finally:
                    self._loop.remove_reader(sock.fileno())
                woken = True
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    async def _refuse_plain_http(self, conn: socket.socket, remote: str) -> None:
        """Answer 400 like Go's servers do, then close without a reset."""
        log.debug("plain HTTP from %s on the TLS port", remote)
        answer = text_response(400, "client sent an HTTP request to an HTTPS server", close=True)
        try:
            try:
                # Take what has arrived: closing with unread bytes would reset
                # the connection, and the client might lose the answer. (Even
                # a HEAD gets the body: the head may not have arrived whole.)
                conn.recv(MAX_REQUEST_LINE + MAX_HEADER_BYTES)
            except (BlockingIOError, InterruptedError):
                pass
            await _within(self._loop.sock_sendall(conn, _encode(answer, keep=False)), self.limits.write_timeout)
            conn.shutdown(socket.SHUT_WR)
            # A second at most for the client to read and hang up; whatever
            # more it sends meanwhile is dropped.
            await _within(self._discard_until_closed(conn), 1.0)
        except (OSError, asyncio.TimeoutError):
            pass  # the client went away or kept talking: it is closed regardless

    async def _discard_until_closed(self, conn: socket.socket) -> None:
        while await self._loop.sock_recv(conn, 65536):
            pass

    # -- requests ------------------------------------------------------------

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        while True:
            try:
                request = await self._read_request(conn, reader, first)
            except HTTPError as exc:
                await self._send(writer, text_response(exc.status, str(exc), close=True), None, 0.0)
                return
            if request is None:
                return
            first = False
            self._enter(conn, ACTIVE)
            started = time.perf_counter()
            security = self.security
            if security.authenticate is not None or security.rate_limit is not None:
                refusal = await self._refusal(conn, request, security)
            elif self.in_flight >= self.limits.max_requests:
                refusal = BUSY
            else:
                refusal = None
            if refusal is not None:
                keep = await self._send(writer, refusal, request, started)
            else:
                # In flight from here until the response is written, so
                # clients that stop reading fill the limit, not memory.
                self.in_flight += 1
                try:
                    keep = await self._send(writer, self._handle(request), request, started)
                finally:
                    self.in_flight -= 1
            if not keep:
                return
            self._enter(conn, IDLE_AUTHENTICATED if conn.authenticated else IDLE)

    async def _read_request(self, conn: _Connection, reader: asyncio.StreamReader, first: bool) -> Optional[Request]:
        """Parse one request head, or None when the client closed or idled out."""
        try:
            first_byte = await _within(reader.read(1), self.limits.read_timeout if first else self.limits.idle_timeout)
        except asyncio.TimeoutError:
            return None
        if not first_byte:
            return None
        # A kept-alive connection stays idle while its next head arrives: one
        # state change less per request, and a client that stalls there goes
        # first when room is needed.
        try:
            return await _within(self._read_head(reader, first_byte, conn.remote), self.limits.read_timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, "request head not received in time") from None

    async def _read_head(self, reader: asyncio.StreamReader, first_byte: bytes, remote: str) -> Request:
        try:
            line = first_byte + await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise HTTPError(414, "request line too long") from None
        except asyncio.IncompleteReadError:
            raise HTTPError(400, "incomplete request line") from None
        if len(line) > MAX_REQUEST_LINE:
            raise HTTPError(414, "request line too long")
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise HTTPError(400, "malformed request line")
        method, target, version = (part.decode("latin-1") for part in match.groups())
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HTTPError(505, "unsupported HTTP version")
        if target[0] != "/":
            target = _origin_form(target)
        headers: Dict[str, str] = {}
        total = lines = 0
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise HTTPError(431, "header line too long") from None
            except asyncio.IncompleteReadError:
                raise HTTPError(400, "incomplete request head") from None
            total += len(raw)
            if raw in (b"\r\n", b"\n"):
                break
            lines += 1  # lines, not names: repeating one name counts every time
            if total > MAX_HEADER_BYTES or lines > MAX_HEADERS:
                raise HTTPError(431, "request headers too large")
            fieldline = _FIELD_LINE.fullmatch(raw)
            if fieldline is None:
                raise HTTPError(400, "malformed header line")
            key = fieldline.group(1).decode("latin-1").lower()
            value = fieldline.group(2).decode("latin-1")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if "content-length" in headers:
            _check_content_length(headers["content-length"])
        return Request(method, target, version, headers, remote)

    async def _refusal(self, conn: _Connection, request: Request, security: Security) -> Optional[Response]:
        """Why the request is turned away (rate limit, credentials, too many
        in flight), or None to serve it."""
        if security.rate_limit is not None and not security.rate_limit.allow():
            return text_response(429, "rate limit exceeded", headers=[("Retry-After", "1")], rejected="rate_limited")
        if security.authenticate is not None:
            refused = await security.authenticate(request)
            if refused is not None:
                return refused
            conn.authenticated = True
        return BUSY if self.in_flight >= self.limits.max_requests else None

    def _handle(self, request: Request) -> Response:
        try:
            response = self.handler(request)
        except Exception:  # a bug must not take the server down
            log.exception("error handling %s %s", request.method, request.path)
            return text_response(500, "internal error")
        if "content-length" in request.headers or "transfer-encoding" in request.headers:
            response.close = True  # bodies are not read; do not reuse the stream
        return response

    async def _send(self, writer: asyncio.StreamWriter, response: Response, request: Optional[Request], started: float) -> bool:
        """Write the response; True if the connection may serve another."""
        keep = (
            request is not None
            and not response.close
            and (request.version == "HTTP/1.1" and request.header("connection").lower() != "close"
                 or request.version == "HTTP/1.0" and request.header("connection").lower() == "keep-alive")
        )  # fmt: skip
        code = str(response.status) if response.status in REASONS else "other"
        self._codes[code] = self._codes.get(code, 0) + 1
        if response.rejected:
            self._rejected[response.rejected] += 1
        if response.status >= 400 and log.isEnabledFor(logging.DEBUG):
            who = f"{request.method} {request.path} from {request.remote}" if request is not None else f"a request from {writer.get_extra_info('peername')}"
            log.debug("%d to %s: %s", response.status, who, response.body[:200].decode("utf-8", "replace").strip())
        writer.write(_encode(response, keep, head_only=request is not None and request.method == "HEAD", extra=self.security.headers))
        try:
            await _within(writer.drain(), self.limits.write_timeout)
        except asyncio.TimeoutError:
            # close() would wait for the unread bytes to drain; drop them instead.
            writer.transport.abort()
            raise ConnectionError("client did not take the response in time") from None
        if self.log_requests and request is not None:
            access_log.info(
                "%s %s %d %.2fms %s", request.method, request.path, response.status,
                (time.perf_counter() - started) * 1000, request.remote,
            )  # fmt: skip
        return keep


_malloc_trim: Optional[Callable[[int], int]] = None


def release_memory() -> None:
    """Hand freed memory back to the system. glibc keeps the heap pages a
    connection storm freed for reuse, so an agent that once held a thousand
    TLS connections would keep their memory for good; malloc_trim returns
    them. Elsewhere (musl) nothing happens."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = lambda pad: 0  # noqa: E731
    _malloc_trim(0)


def _small_tls_reads() -> None:
    """Shrink asyncio's per-connection TLS read buffer (see TLS_READ_SIZE).
    A class attribute of asyncio's TLS protocol, read when each connection is
    made; the agent's server is the only user of asyncio TLS in its process."""
    from asyncio import sslproto

    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_SIZE:
        sslproto.SSLProtocol.max_size = TLS_READ_SIZE  # type: ignore[attr-defined]


def _has_unread_bytes(sock: socket.socket) -> bool:
    """Whether the client sent bytes the server has not read yet."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing to read (EAGAIN), or the socket is gone
        return False


def _address(peer: object) -> str:
    """host:port of a peer, IPv6 hosts in brackets ([::1]:51522)."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return str(peer)
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"


def _handshake_error(exc: OSError) -> str:
    """OpenSSL's reason (e.g. UNSUPPORTED_PROTOCOL, TLSV1_ALERT_UNKNOWN_CA) and
    why a client certificate was refused, or the error itself without them."""
    reason = getattr(exc, "reason", None)
    if not reason:
        return str(exc) or type(exc).__name__
    detail = getattr(exc, "verify_message", None)
    return f"{reason} ({detail})" if detail else str(reason)


def _encode(response: Response, keep: bool, head_only: bool = False, extra: Tuple[Tuple[str, str], ...] = ()) -> bytes:
    """Status line, headers and (unless for HEAD) body, ready to send."""
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep else "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in response.headers]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else response.body)
