"""Raw-socket HTTP client pieces for tests that misbehave on purpose."""

from __future__ import annotations

import socket
import time
from typing import Dict, Optional, Tuple


def read_response(sock: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """Read one response: (status, lower-cased headers, body); raises on EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def request(port: int, data: bytes, timeout: float = 5.0) -> Tuple[int, Dict[str, str], bytes]:
    """Send raw bytes on a new connection and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def get(path: str = "/metrics", extra: str = "") -> bytes:
    """A well-formed GET request head."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1")


def closed_within(sock: socket.socket, timeout: float) -> Optional[float]:
    """Seconds until the server closed the connection (reading and dropping
    whatever it sent first), or None if it was still open after ``timeout``."""
    start = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None
