"""Fixtures for HTTP tests: an in-process server on a loopback port and
throw-away TLS certificates made with the openssl command."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from support import require_tool

from hostagent.web import HTTPServer, Limits, Request, Response


@dataclass
class Running:
    """An in-process HTTPServer and where it listens."""

    server: HTTPServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw client socket connected to the server."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock


def ok_handler(request: Request) -> Response:
    """Answers every request with 200 and the path."""
    return Response(200, f"ok {request.path}\n".encode())


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    """Start HTTPServer(127.0.0.1, port 0, handler, limits, ...); stopped after the test."""
    started: List[HTTPServer] = []

    def start(handler: Callable[[Request], Response] = ok_handler, limits: Optional[Limits] = None, **kwargs: object) -> Running:
        server = HTTPServer("127.0.0.1", 0, handler, limits or Limits(), **kwargs)  # type: ignore[arg-type]
        addresses = server.bind()
        server.start()
        started.append(server)
        return Running(server, addresses[0][1])

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Certs:
    """PEM files: a CA, a server certificate for 127.0.0.1 it signed, and a
    client CA with a client certificate, plus a client certificate from a
    stranger CA that the server must refuse."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path
    # A client certificate with subject alternative names (DNS, IP, e-mail),
    # and a second server certificate for rotation.
    san_cert: Path
    san_key: Path
    server2_cert: Path
    server2_key: Path


def _openssl(exe: str, *args: str) -> None:
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _make_ca(exe: str, d: Path, name: str) -> None:
    _openssl(exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"))  # fmt: skip


def _make_leaf(exe: str, d: Path, name: str, ca: str, ext: str) -> None:
    """A key and a certificate for ``name`` signed by the CA called ``ca``."""
    (d / f"{name}.ext").write_text(ext)
    _openssl(exe, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))  # fmt: skip
    _openssl(exe, "x509", "-req", "-in", str(d / f"{name}.csr"), "-days", "2", "-CA", str(d / f"{ca}.crt"),
             "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial", "-extfile", str(d / f"{name}.ext"),
             "-out", str(d / f"{name}.crt"))  # fmt: skip


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    exe = require_tool("openssl")
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "clientca", "strangerca"):
        _make_ca(exe, d, ca)
    _make_leaf(exe, d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _make_leaf(exe, d, "client", "clientca", "extendedKeyUsage=clientAuth\n")
    _make_leaf(exe, d, "stranger", "strangerca", "extendedKeyUsage=clientAuth\n")
    _make_leaf(exe, d, "sanclient", "clientca", "subjectAltName=DNS:scraper.example,IP:10.0.0.9,email:ops@example.com\nextendedKeyUsage=clientAuth\n")
    _make_leaf(exe, d, "server2", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    return Certs(d / "ca.crt", d / "server.crt", d / "server.key", d / "clientca.crt", d / "client.crt",
                 d / "client.key", d / "stranger.crt", d / "stranger.key", d / "sanclient.crt", d / "sanclient.key",
                 d / "server2.crt", d / "server2.key")  # fmt: skip
