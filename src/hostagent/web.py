"""The HTTP server the agent's endpoints (``routes.py``) are served by.

An asyncio loop on its own thread serves every connection, so an idle or slow
client costs a socket, not a thread. Handlers run on a pool of at most
``max_requests`` threads; a request beyond that gets 503 at once. Limits keep
the rest bounded too: open connections, bytes in a request head, the time a
client has to send it and the time it has to take the response.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, Awaitable, Callable, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # at run time ssl is loaded only when TLS is on (see cli.serve)
    import ssl

log = logging.getLogger("hostagent.web")
access_log = logging.getLogger("hostagent.access")

_HAS_TIMEOUT = hasattr(asyncio, "timeout")  # asyncio.timeout() is new in 3.11
T = TypeVar("T")

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


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


def text_response(status: int, text: str, **kwargs: object) -> Response:
    return Response(status, (text + "\n").encode(), **kwargs)  # type: ignore[arg-type]


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


# Handler: request -> response. An optional authenticator runs first and
# returns None to let the request through or a Response (401) to refuse it.
Handler = Callable[[Request], Response]
Authenticator = Callable[[Request], Awaitable[Optional[Response]]]


class HandlerPool:
    """At most ``size`` daemon threads running calls; one idle for ``linger``
    seconds exits, so a burst of scrapes leaves no threads behind.

    Daemon threads, because a call stuck in a system call must not hold up
    the agent's exit."""

    def __init__(self, size: int, linger: float = 5.0, name: str = "http-handler"):
        self.size = size
        self.linger = linger
        self.name = name
        self._queue: "queue.SimpleQueue[Optional[Tuple[Future, Callable, object]]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a call
        self._pending = 0  # calls queued and not yet taken
        self._started = 0

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, func: Callable[[object], object], arg: object) -> Future:
        future: Future = Future()
        with self._lock:
            self._queue.put((future, func, arg))
            self._pending += 1
            if self._pending > self._idle and self._threads < self.size:
                self._threads += 1
                self._started += 1
                try:
                    threading.Thread(target=self._work, name=f"{self.name}-{self._started}", daemon=True).start()
                except RuntimeError:
                    # The system refused a thread (a tasks limit): keep the
                    # count true so the pool can try again later; threads
                    # already running still take the queued call.
                    self._threads -= 1
                    if self._threads == 0:
                        raise
        return future

    def close(self) -> None:
        """Idle threads exit now, busy ones after their call."""
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(None)

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                item = self._queue.get(timeout=self.linger)
            except queue.Empty:
                item = False
            with self._lock:
                self._idle -= 1
                if item is False:
                    if self._pending:
                        continue  # a call arrived as the wait ended: take it
                    self._threads -= 1
                    return
                if item is None:
                    self._threads -= 1
                    return
                self._pending -= 1
            future, func, arg = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func(arg))
            except BaseException as exc:  # handed to the awaiting request
                future.set_exception(exc)


@dataclass
class Limits:
    max_requests: int = 40
    max_connections: int = 512
    read_timeout: float = 10.0
    idle_timeout: float = 120.0
    write_timeout: float = 30.0  # a client that stops reading its response is cut


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """Await with a deadline; on Python 3.11+ without a task per wait."""
    if _HAS_TIMEOUT:
        async with asyncio.timeout(seconds):  # type: ignore[attr-defined]
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class HTTPServer:
    """Serves ``handler`` on one or more listening sockets from a loop thread."""

    def __init__(
        self,
        host: Optional[str],
        port: int,
        handler: Handler,
        limits: Limits = Limits(),
        ssl_context: Optional[ssl.SSLContext] = None,
        authenticate: Optional[Authenticator] = None,
        log_requests: bool = False,
    ):
        self.host = host
        self.port = port
        self.handler = handler
        self.limits = limits
        self.ssl_context = ssl_context
        self.authenticate = authenticate
        self.log_requests = log_requests
        self.in_flight = 0  # requests parsed and not yet answered in full
        self.connections = 0
        self.rejected_busy = 0
        self._loop = asyncio.new_event_loop()
        self._servers: List[asyncio.AbstractServer] = []
        self._acceptors: List[asyncio.Task] = []  # accept loops of the TLS sockets
        self._handshakes: set = set()  # connections between accept and TLS handshake
        self._thread: Optional[threading.Thread] = None
        self._conn_tasks: set = set()
        # Threads are started on demand and never exceed max_requests.
        self._pool = HandlerPool(limits.max_requests)
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
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            for sock in self.sockets:
                if self.ssl_context is None:
                    srv = self._loop.run_until_complete(asyncio.start_server(self._serve_connection, sock=sock, limit=MAX_REQUEST_LINE))
                    self._servers.append(srv)
                else:
                    self._acceptors.append(self._loop.create_task(self._accept_tls(sock)))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None:  # never started (e.g. bind failed)
            for s in self.sockets:
                s.close()
            self._loop.close()
            self._pool.close()
            return

        async def shutdown() -> None:
            for srv in self._servers:
                srv.close()
            # Every task, not only connections already being served: one
            # accepted a moment ago may not have started yet.
            me = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not me]
            for task in tasks:
                task.cancel()
            # The TLS listeners (no asyncio server closes them), now: no more
            # connections completed into the backlog while the rest unwinds.
            self._close_listeners()
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
        self._pool.close()

    def _close_listeners(self) -> None:
        for sock in self.sockets:
            if sock.fileno() != -1:
                sock.close()

    # -- TLS -----------------------------------------------------------------
    #
    # TLS sockets are accepted here rather than by asyncio's server, which
    # starts the handshake at once: a connection's first byte is looked at
    # (without taking it) before the handshake, so plain HTTP sent to the TLS
    # port gets a 400 that says so, and a failed handshake is logged. The cost
    # is one recv(MSG_PEEK) per connection.

    async def _accept_tls(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = await self._loop.sock_accept(sock)
            except (InterruptedError, ConnectionAbortedError):
                continue  # the client gave up while queued
            except OSError as exc:
                # Out of descriptors or memory: accepting again at once would spin.
                log.error("cannot accept a connection: %s", exc.strerror or exc)
                await asyncio.sleep(1.0)
                continue
            if self.connections + len(self._handshakes) >= self.limits.max_connections:
                conn.close()  # the connection limit counts handshakes in progress too
                continue
            task = self._loop.create_task(self._start_tls(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _start_tls(self, conn: socket.socket) -> None:
        """Sniff the first byte, then hand the socket to asyncio for the
        handshake and to _serve_connection after it."""
        try:
            peer = conn.getpeername()
            remote = _address(peer)
        except OSError:
            conn.close()  # gone already
            return
        handed_over = False
        started = self._loop.time()
        try:
            first = await _within(self._peek(conn), self.limits.read_timeout)
            if not first:
                return  # closed without a word
            if first.isalpha():  # a TLS record starts with 0x16, an HTTP request with a method
                await self._refuse_plain_http(conn, remote)
                return
            handed_over = True  # from here the transport owns the socket
            left = self.limits.read_timeout - (self._loop.time() - started)
            await self._loop.connect_accepted_socket(self._stream_protocol, conn, ssl=self.ssl_context, ssl_handshake_timeout=max(left, 0.01))
        except asyncio.TimeoutError:
            log.debug("TLS handshake with %s failed: nothing received within %gs", remote, self.limits.read_timeout)
        except OSError as exc:  # ssl.SSLError is an OSError
            log.debug("TLS handshake with %s failed: %s", remote, _handshake_error(exc))
        finally:
            if not handed_over:
                conn.close()

    async def _peek(self, conn: socket.socket) -> bytes:
        """The connection's first byte, left in place for the TLS handshake."""
        while True:
            try:
                return conn.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                pass
            readable = self._loop.create_future()
            self._loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                self._loop.remove_reader(conn.fileno())

    def _stream_protocol(self) -> asyncio.StreamReaderProtocol:
        """What asyncio.start_server makes for each connection."""
        reader = asyncio.StreamReader(limit=MAX_REQUEST_LINE, loop=self._loop)
        return asyncio.StreamReaderProtocol(reader, self._serve_connection, loop=self._loop)

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

    # -- connections ---------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        remote = _address(peer)
        if self.connections >= self.limits.max_connections:
            writer.close()
            return
        self.connections += 1
        self._conn_tasks.add(task)
        try:
            first = True
            while True:
                wait = self.limits.read_timeout if first else self.limits.idle_timeout
                first = False
                try:
                    request = await self._read_request(reader, wait, remote)
                except HTTPError as exc:
                    await self._send(writer, text_response(exc.status, str(exc), close=True), None, 0.0)
                    break
                if request is None:
                    break
                started = time.perf_counter()
                if self.in_flight >= self.limits.max_requests:
                    self.rejected_busy += 1
                    busy = text_response(503, "too many requests in flight", headers=[("Retry-After", "1")])
                    keep = await self._send(writer, busy, request, started)
                else:
                    # In flight from the parsed request until its response is
                    # written: a handler running on a thread, a credential
                    # check, or a slow reader draining its body.
                    self.in_flight += 1
                    try:
                        response = await self._respond(request)
                        keep = await self._send(writer, response, request, started)
                    finally:
                        self.in_flight -= 1
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):  # ssl.SSLError is an OSError
            pass  # the client went away or spoke garbage: nothing to answer
        except asyncio.CancelledError:
            pass
        finally:
            self.connections -= 1
            self._conn_tasks.discard(task)
            try:
                writer.close()
            except Exception:  # already torn down
                pass

    async def _read_request(self, reader: asyncio.StreamReader, wait: float, remote: str) -> Optional[Request]:
        """Parse one request head, or None when the client closed or idled out."""
        try:
            first_byte = await _within(reader.read(1), wait)
        except asyncio.TimeoutError:
            return None
        if not first_byte:
            return None
        try:
            return await _within(self._read_head(reader, first_byte, remote), self.limits.read_timeout)
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
        parts = line.decode("latin-1").strip().split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise HTTPError(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HTTPError(505 if version.startswith("HTTP/") else 400, "unsupported HTTP version")
        if target[0] != "/":
            target = _origin_form(target)
        headers: Dict[str, str] = {}
        total = 0
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise HTTPError(431, "header line too long") from None
            except asyncio.IncompleteReadError:
                raise HTTPError(400, "incomplete request head") from None
            total += len(raw)
            if total > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
                raise HTTPError(431, "request headers too large")
            if raw in (b"\r\n", b"\n"):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise HTTPError(400, "malformed header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if "content-length" in headers:
            _check_content_length(headers["content-length"])
        return Request(method, target, version, headers, remote)

    async def _respond(self, request: Request) -> Response:
        if self.authenticate is not None:
            refused = await self.authenticate(request)
            if refused is not None:
                return refused
        try:
            if getattr(self.handler, "never_blocks", False):
                # The thread hop would cost more than the handler itself.
                response = self.handler(request)
            else:
                # Off the loop: a slow handler holds a pool thread, not every connection.
                response = await asyncio.wrap_future(self._pool.submit(self.handler, request))
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
        )
        writer.write(_encode(response, keep, head_only=request is not None and request.method == "HEAD"))
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
            )
        return keep


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


def _encode(response: Response, keep: bool, head_only: bool = False) -> bytes:
    """Status line, headers and (unless for HEAD) body, ready to send."""
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep else "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in response.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else response.body)
