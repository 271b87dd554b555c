"""HTTP access to an agent or a Prometheus, with TLS and basic auth.

The options are the ones users already have for the agent's web config: a CA
file to trust, a client certificate and key, a user name and a password file.
Every failure becomes a :class:`ToolError` with one line that names the URL
and what happened (refused, timed out, bad certificate, 401, ...).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests

from . import ToolError

PASSWORD_ENV = "HOSTAGENT_PASSWORD"


def add_arguments(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    """The TLS and basic auth options, shared by every tool."""
    group = parser.add_argument_group("connection (TLS and basic auth, as in the agent's web config)")
    group.add_argument("--ca-file", metavar="FILE", help="CA certificate(s) to verify the server with (default: the system's)")
    group.add_argument("--cert-file", metavar="FILE", help="client certificate, for servers that require one")
    group.add_argument("--key-file", metavar="FILE", help="the client certificate's private key")
    group.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    group.add_argument("--username", metavar="USER", help="basic auth user name")
    group.add_argument("--password-file", metavar="FILE", help=f"file holding the basic auth password (or ${PASSWORD_ENV})")
    group.add_argument("--timeout", type=float, default=timeout, metavar="SECONDS", help=f"seconds to wait for each answer (default {timeout:g})")


def _reason(exc: Exception) -> str:
    """The useful end of a connection error: 'Connection refused', 'Name or service not known'."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        found = re.findall(r"certificate verify failed: ([^(')\"]+)", text)
        return "certificate verify failed" + (f": {found[-1].strip()}" if found else "") + " (give --ca-file, or --insecure)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "TLS handshake failed: is it plain http?"
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed without an answer"
    found = re.findall(r"\[SSL[^\]]*\] ([^(')\"]+)", text)
    return found[-1].strip() if found else "connection failed"


@dataclass
class Connection:
    """One server: base URL plus how to talk to it."""

    url: str
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    insecure: bool = False
    username: Optional[str] = None
    password: Optional[str] = None
    timeout: float = 10.0
    what: str = "server"  # "agent", "Prometheus": for messages

    def __post_init__(self) -> None:
        self.url = check_url(self.url, self.what)
        self._session: Optional[requests.Session] = None

    @classmethod
    def from_args(cls, url: str, args: argparse.Namespace, what: str, insecure_default: bool = False) -> "Connection":
        """A connection from the shared options; bad files are usage errors (exit 2)."""
        for option in ("ca_file", "cert_file", "key_file", "password_file"):
            path = getattr(args, option, None)
            if path is not None and not os.path.isfile(path):
                raise ToolError(f"--{option.replace('_', '-')}: no such file: {path}", 2)
        if bool(args.cert_file) != bool(args.key_file):
            raise ToolError("--cert-file and --key-file go together", 2)
        password = None
        if args.password_file:
            with open(args.password_file, encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        elif os.environ.get(PASSWORD_ENV):
            password = os.environ[PASSWORD_ENV]
        if password is not None and not args.username:
            raise ToolError(f"a password was given (--password-file or ${PASSWORD_ENV}) but no --username", 2)
        if args.timeout <= 0:
            raise ToolError(f"--timeout must be more than 0 seconds, got {args.timeout:g}", 2)
        return cls(
            url,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            insecure=args.insecure or (insecure_default and not args.ca_file),
            username=args.username,
            password=password if args.username else None,
            timeout=args.timeout,
            what=what,
        )

    def session(self) -> requests.Session:
        if self._session is None:
            s = requests.Session()
            s.trust_env = False  # no proxies from the environment for monitoring traffic
            if self.insecure:
                import urllib3

                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                s.verify = False
            elif self.ca_file:
                s.verify = self.ca_file
            if self.cert_file:
                s.cert = (self.cert_file, self.key_file)  # type: ignore[assignment]
            if self.username:
                s.auth = (self.username, self.password or "")
            self._session = s
        return self._session

    def get(self, path: str, params: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None, ok: Tuple[int, ...] = (200,)) -> requests.Response:
        """GET ``path``; a refused or failed request, or a status not in ``ok``, raises ToolError."""
        target = self.url + path
        wait = self.timeout if timeout is None else timeout
        try:
            resp = self.session().get(target, params=params, timeout=wait)
        except requests.exceptions.SSLError as exc:
            raise ToolError(f"cannot reach {self.what} at {self.url}: {_reason(exc)}") from None
        except requests.Timeout:
            raise ToolError(f"no answer from {self.what} at {self.url} within {wait:g}s") from None
        except requests.RequestException as exc:
            raise ToolError(f"cannot reach {self.what} at {self.url}: {_reason(exc)}") from None
        except OSError as exc:  # e.g. an unreadable client key
            raise ToolError(f"cannot reach {self.what} at {self.url}: {exc}") from None
        if resp.status_code == 401:
            hint = "wrong user name or password" if self.username else "it wants basic auth: give --username and --password-file"
            raise ToolError(f"{self.what} at {self.url} answered 401 Unauthorized: {hint}")
        if resp.status_code not in ok:
            raise ToolError(f"{self.what} at {self.url} answered {resp.status_code} to GET {path}: {_body_line(resp)}")
        return resp

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _body_line(resp: requests.Response) -> str:
    return " ".join(resp.text.split())[:200] or resp.reason or "(no body)"


def check_url(url: str, what: str) -> str:
    """``url`` without a trailing slash; a usage error unless it is http(s)://host[:port][/path]."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"the {what} URL must look like http://host:port or https://host:port, got {url!r}", 2)
    try:
        parts.port
    except ValueError:
        raise ToolError(f"the {what} URL has a bad port: {url!r}", 2) from None
    return url.strip().rstrip("/")
