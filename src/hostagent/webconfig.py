"""TLS, basic auth, response headers and a rate limit from a web config file
in the exporter-toolkit format.

    tls_server_config:
      cert_file: /etc/hostagent/tls.crt              # or cert: inline PEM
      key_file: /etc/hostagent/tls.key               # or key: inline PEM
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: /etc/hostagent/ca.crt          # or client_ca: inline PEM
      client_allowed_sans: [prometheus.example.com]  # optional
      min_version: TLS12                             # TLS10..TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2b$12$...                         # bcrypt hash
    rate_limit: {interval: 100ms, burst: 20}

The file is validated completely; every problem is reported with its key
path. ``WebConfigWatcher`` reads it again, with the files it names, when any
of them changes (certificate rotation): a good new version is served from the
next connection, a broken one is reported and the previous one kept.
Passwords and hashes never reach logs or metrics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import difflib
import hashlib
import ipaddress
import logging
import os
import queue
import re
import ssl
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import bcrypt

from .config import ConfigError, read_yaml
from .web import HTTPServer, RateLimit, Request, Response, Security, text_response

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config", "rate_limit")
TLS_KEYS = (
    "cert_file", "key_file", "cert", "key", "client_auth_type", "client_ca_file", "client_ca", "client_allowed_sans",
    "min_version", "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
)  # fmt: skip
HTTP_KEYS = ("http2", "headers")
RATE_KEYS = ("interval", "burst")
# The response headers the format lets a file set, with the values allowed
# (None: any). A blank value leaves the header unset.
HEADERS: Dict[str, Optional[Tuple[str, ...]]] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
# Accepted so existing node_exporter files load, but not applied: Go's cipher
# and curve names have no direct equivalent in Python's ssl module. Each use
# is warned about.
IGNORED_KEYS = ("tls_server_config.cipher_suites", "tls_server_config.curve_preferences", "tls_server_config.prefer_server_cipher_suites")

# Certificates, keys and CA bundles are small; anything bigger is not one.
MAX_PEM_BYTES = 1024 * 1024
# bcrypt: Go's library (and so node_exporter) takes costs 4 to 31, but each
# step doubles the work: cost 12 takes about a quarter of a second, cost 16
# about four, cost 31 days. Above 16 the first scrape would outwait its
# timeout, and one guess would hold the checker for that long.
BCRYPT_MIN_COST, BCRYPT_MAX_COST = 4, 16
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads no further; Go's check ignores the rest too
BCRYPT_QUEUE = 8  # checks waiting behind the running one; more get 429
BCRYPT_CPU_SHARE = 0.5  # of one core, however many checks are asked for
REMEMBERED = 1024  # results kept, of right and of wrong credentials each

log = logging.getLogger("hostagent.web")
DEFAULT_MIN_VERSION = ssl.TLSVersion.TLSv1_2
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Client auth types Python's ssl module can enforce. Requesting a certificate
# without verifying it has no equivalent there, so those types are refused.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
HASH_HINT = "generate one with `hostagent hash-password`"
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _unknown(path: str, key: str, allowed: Tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{path}{key}: unknown key{hint}"


# --------------------------------------------------------------------------
# Files


def _open_readonly(path: str) -> int:
    """Open without blocking: a FIFO named by mistake must not hang the agent."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def read_small_file(path: str, where: str, problems: List[str], limit: int = MAX_PEM_BYTES) -> Optional[bytes]:
    """The bytes of ``path`` if it is a readable regular file of at most
    ``limit`` bytes; otherwise a problem naming ``where`` and the path.

    Checked before OpenSSL sees it: OpenSSL's errors do not say which of the
    files it was given is the missing one."""
    try:
        fd = _open_readonly(path)
    except FileNotFoundError:
        problems.append(f"{where}: file not found: {path}")
        return None
    except PermissionError:
        problems.append(f"{where}: permission denied: {path}")
        return None
    except OSError as exc:
        problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            problems.append(f"{where}: is a directory, not a file: {path}")
        elif not stat.S_ISREG(info.st_mode):
            problems.append(f"{where}: is not a regular file (a FIFO, socket or device): {path}")
        elif info.st_size > limit:
            problems.append(f"{where}: is {info.st_size} bytes, more than the {limit // 1024} KiB a certificate or key file may have: {path}")
        else:
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
                size += len(chunk)
            problems.append(f"{where}: grew beyond {limit // 1024} KiB while being read: {path}")
    except OSError as exc:
        problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from, without writing it to disk
    (for keys given inline, and for files read once so that a certificate
    and its key are loaded as they were at the same moment)."""
    try:
        fd = os.memfd_create("hostagent-tls", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0 and os.path.exists(f"/proc/self/fd/{fd}"):
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    if fd >= 0:
        os.close(fd)
    with tempfile.TemporaryDirectory(prefix="hostagent-tls-") as tmp:  # mode 0700
        path = os.path.join(tmp, "pem")
        with open(path, "wb") as handle:
            handle.write(data)
        yield path


# --------------------------------------------------------------------------
# TLS


def _pem(tls: Mapping[str, Any], file_key: str, inline_key: str, base: str, problems: List[str], files: List[str]) -> Optional[Tuple[bytes, str]]:
    """(PEM bytes, where they came from) for a file key or its inline twin."""
    prefix = "tls_server_config."
    inline, path_value = tls.get(inline_key), tls.get(file_key)
    if inline and path_value:
        problems.append(f"{prefix}{inline_key} and {prefix}{file_key}: give one of them, not both")
        return None
    if inline:
        if not isinstance(inline, str):
            problems.append(f"{prefix}{inline_key}: must be PEM text, got {type(inline).__name__}")
            return None
        return inline.encode("utf-8"), f"{prefix}{inline_key} (inline)"
    if not path_value:
        return None
    where = prefix + file_key
    if not isinstance(path_value, str) or "\0" in path_value:
        kind = type(path_value).__name__ if not isinstance(path_value, str) else "a string with a NUL byte"
        problems.append(f"{where}: must be a file path, got {kind}")
        return None
    path = os.path.join(base, path_value)  # relative to the web config file, as exporter-toolkit does
    files.append(path)
    data = read_small_file(path, where, problems)
    return None if data is None else (data, path)


def _tls_context(tls: Mapping[str, Any], base: str, problems: List[str], files: List[str]) -> Tuple[Optional[ssl.SSLContext], Optional[Callable[[object], Optional[str]]]]:
    prefix = "tls_server_config."
    for key in tls:
        if key not in TLS_KEYS:
            problems.append(_unknown(prefix, str(key), TLS_KEYS))
        elif prefix + key in IGNORED_KEYS:
            _warn_ignored(prefix + key)
    before = len(problems)
    if not (tls.get("cert_file") or tls.get("cert")) or not (tls.get("key_file") or tls.get("key")):
        problems.append(f"{prefix}cert_file and {prefix}key_file: both are required for TLS (or cert and key inline)")
    auth_type = tls.get("client_auth_type", "NoClientCert") or "NoClientCert"
    verify = CLIENT_AUTH.get(auth_type) if isinstance(auth_type, str) else None
    if auth_type in UNSUPPORTED_CLIENT_AUTH:
        problems.append(f"{prefix}client_auth_type: {auth_type} (a certificate requested but not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
    elif verify is None:
        problems.append(f"{prefix}client_auth_type: must be one of {', '.join(list(CLIENT_AUTH) + list(UNSUPPORTED_CLIENT_AUTH))}, got {auth_type!r}")
    if verify not in (None, ssl.CERT_NONE) and not (tls.get("client_ca_file") or tls.get("client_ca")):
        problems.append(f"{prefix}client_ca_file: required when client_auth_type is {auth_type}")
    check_peer = _allowed_sans(tls.get("client_allowed_sans"), verify, problems)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["http/1.1"])  # the only protocol served
    for vkey, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        name = tls.get(vkey)
        if name is None:
            continue
        version = _version(name)
        if version is None:
            problems.append(f"{prefix}{vkey}: must be one of {', '.join(VERSIONS)}, got {name!r}")
        else:
            setattr(ctx, attr, version)
    if tls.get("min_version") is None:
        ctx.minimum_version = DEFAULT_MIN_VERSION
    _check_version_range(tls, problems)
    # Files are checked even after other problems, so one run reports them all.
    cert, key, ca = (_pem(tls, f"{k}_file", k, base, problems, files) for k in ("cert", "key", "client_ca"))
    if cert and key:
        if b"ENCRYPTED" in key[0]:
            problems.append(f"{prefix}key_file: the key is encrypted with a passphrase; give an unencrypted key ({key[1]})")
        else:
            try:
                with _in_memory_file(cert[0]) as cert_path, _in_memory_file(key[0]) as key_path:
                    ctx.load_cert_chain(cert_path, key_path, password=lambda: b"")
            except (ssl.SSLError, OSError) as exc:
                problems.append(_chain_problem(cert, key, exc))
    if ca:
        pem = ca[0]
        try:
            ctx.load_verify_locations(cadata=pem.decode("ascii") if pem.lstrip().startswith(b"-----") else pem)
        except (ssl.SSLError, OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{prefix}client_ca_file: cannot load {ca[1]}: {exc}")
    if len(problems) > before or verify is None:
        return None, None
    ctx.verify_mode = verify
    return ctx, check_peer


_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _chain_problem(cert: Tuple[bytes, str], key: Tuple[bytes, str], exc: Exception) -> str:
    """Why a certificate and key did not load, in words: which file holds
    what, rather than OpenSSL's "[SSL] PEM lib"."""
    prefix = "tls_server_config."
    cert_labels = set(_PEM_LABEL.findall(cert[0]))
    key_labels = {label for label in _PEM_LABEL.findall(key[0]) if label.endswith(b"PRIVATE KEY")}
    if b"CERTIFICATE" not in cert_labels:
        what = "a private key" if any(label.endswith(b"PRIVATE KEY") for label in cert_labels) else "no PEM certificate"
        swapped = "; are cert_file and key_file swapped?" if what == "a private key" and b"CERTIFICATE" in _PEM_LABEL.findall(key[0]) else ""
        return f"{prefix}cert_file: {cert[1]} does not hold a certificate (it holds {what}){swapped}"
    if not key_labels:
        return f"{prefix}key_file: {key[1]} does not hold a private key (no -----BEGIN ... PRIVATE KEY----- block)"
    reason = getattr(exc, "reason", None) or ""
    if reason == "KEY_VALUES_MISMATCH":
        return f"{prefix}key_file: {key[1]} does not match {prefix}cert_file {cert[1]} (the key is not the certificate's)"
    detail = reason.replace("_", " ").lower() if reason else (getattr(exc, "strerror", None) or str(exc))
    return f"{prefix}cert_file/key_file: cannot load the certificate {cert[1]} with the key {key[1]}: {detail}"


def _allowed_sans(value: Any, verify: Optional[ssl.VerifyMode], problems: List[str]) -> Optional[Callable[[object], Optional[str]]]:
    """A check of a client certificate's subject alternative names against
    ``client_allowed_sans`` (exact match of a DNS name, IP, e-mail or URI)."""
    if value is None or value == []:
        return None
    where = "tls_server_config.client_allowed_sans"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: must be a list of names (DNS names, IP addresses, e-mail addresses or URIs)")
        return None
    if verify != ssl.CERT_REQUIRED:
        problems.append(f"{where}: needs client_auth_type RequireAndVerifyClientCert; other types let a client in without a certificate to match")
        return None
    allowed = frozenset(_canonical(v) for v in value)

    def check(ssl_object: object) -> Optional[str]:
        cert = ssl_object.getpeercert() if ssl_object is not None else None  # type: ignore[attr-defined]
        if not cert:
            return "no client certificate"
        names = [_canonical(name) for kind, name in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address", "email", "URI")]
        if allowed.intersection(names):
            return None
        return f"client certificate names {', '.join(names) or 'nothing'}, none of them in {where}"

    return check


def _canonical(name: str) -> str:
    """IP addresses in one spelling (OpenSSL writes IPv6 in full)."""
    try:
        return str(ipaddress.ip_address(name.strip()))
    except ValueError:
        return name.strip()


def _check_version_range(tls: Mapping[str, Any], problems: List[str]) -> None:
    """A minimum above the maximum leaves no version: OpenSSL takes such a
    context without complaint, then fails every handshake."""
    low, high = tls.get("min_version"), tls.get("max_version")
    if high is None or _version(high) is None or (low is not None and _version(low) is None):
        return  # no maximum, or not a version: reported already
    if low is None and VERSIONS[high] < DEFAULT_MIN_VERSION:
        problems.append(f"tls_server_config.max_version: {high} is below the default tls_server_config.min_version TLS12; "
                        "no TLS version is left, so set min_version too")  # fmt: skip
    elif low is not None and VERSIONS[low] > VERSIONS[high]:
        problems.append(f"tls_server_config.min_version: {low} is above tls_server_config.max_version {high}; no TLS version is left")


def _version(name: Any) -> Optional[ssl.TLSVersion]:
    return VERSIONS.get(name) if isinstance(name, str) else None


def _warn_ignored(key: str) -> None:
    log.warning("web config: %s is accepted for compatibility but not applied", key)


# --------------------------------------------------------------------------
# HTTP settings and the rate limit


def _http_settings(http: Any, problems: List[str]) -> Tuple[Tuple[str, str], ...]:
    """The response headers ``http_server_config`` asks for."""
    if http is None:
        return ()
    if not isinstance(http, Mapping):
        problems.append("http_server_config: must be a mapping")
        return ()
    problems += [_unknown("http_server_config.", str(k), HTTP_KEYS) for k in http if k not in HTTP_KEYS]
    http2 = http.get("http2")
    if http2 is not None and not isinstance(http2, bool):
        problems.append(f"http_server_config.http2: must be true or false, got {http2!r}")
    elif http2:
        log.info("web config: http_server_config.http2 is true, but the agent serves HTTP/1.1 only (clients fall back to it)")
    headers = http.get("headers")
    if headers is None:
        return ()
    if not isinstance(headers, Mapping):
        problems.append("http_server_config.headers: must be a mapping of header name to value")
        return ()
    out = []
    for name, value in headers.items():
        where = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            problems.append(f"{where}: not a header the web config may set; it may set {', '.join(HEADERS)}")
            continue
        if value is None or value == "":
            continue  # blank: unset
        allowed = HEADERS[name]
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            problems.append(f"{where}: must be a one-line string")
        elif allowed is not None and value.lower() not in allowed:
            problems.append(f"{where}: must be {' or '.join(allowed)}, got {value!r}")
        else:
            out.append((str(name), value))
    return tuple(out)


def parse_duration(value: Any) -> Optional[float]:
    """Seconds from a Go duration (``1s``, ``100ms``, ``1m30s``, ``0``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value == 0:
        return 0.0
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _rate_limit(value: Any, problems: List[str]) -> Optional[RateLimit]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append("rate_limit: must be a mapping with interval and burst")
        return None
    problems += [_unknown("rate_limit.", str(k), RATE_KEYS) for k in value if k not in RATE_KEYS]
    interval = parse_duration(value.get("interval", 0))
    if interval is None:
        problems.append(f"rate_limit.interval: must be a duration such as 1s or 100ms (0 turns the limit off), got {value.get('interval')!r}")
        return None
    if interval == 0:
        return None
    burst = value.get("burst")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        problems.append(f"rate_limit.burst: must be a whole number of at least 1 while rate_limit.interval is set (0 would refuse every request), got {burst!r}")
        return None
    return RateLimit(interval, burst)


# --------------------------------------------------------------------------
# Basic auth


class BcryptChecker:
    """bcrypt checks on one thread, one at a time, using at most
    ``cpu_share`` of a core, with at most ``queue_limit`` waiting.

    Results are remembered by a SHA-256 digest of hash, user and password
    (never the password itself), right and wrong alike, so a scraper pays
    bcrypt once and a client repeating the same wrong password pays it once
    too; identical checks asked for meanwhile wait for the same result.
    Kept across web config reloads: a changed hash changes the digests.

    Hosts that sent wrong credentials, or more than could wait, are
    suspect: their checks queue apart (``queue_limit`` more) and run only
    when no other host's is waiting, so a host guessing passwords cannot
    keep out a scraper whose credentials were never checked (the agent
    just started)."""

    def __init__(self, queue_limit: int = BCRYPT_QUEUE, cpu_share: float = BCRYPT_CPU_SHARE, remember: int = REMEMBERED):
        self.queue_limit = queue_limit
        self.cpu_share = cpu_share
        self.remember = remember
        self.checks = 0  # bcrypt computations done
        self._lock = threading.Lock()
        self._results: Dict[bool, "OrderedDict[bytes, None]"] = {True: OrderedDict(), False: OrderedDict()}
        self._suspects: "OrderedDict[str, None]" = OrderedDict()
        self._pending: Dict[bytes, concurrent.futures.Future] = {}
        self._queue: "queue.PriorityQueue[Tuple[int, int, Optional[Tuple[bytes, bytes, bytes]]]]" = queue.PriorityQueue()
        self._waiting = [0, 0]  # by priority: 0 for other hosts, 1 for suspects
        self._order = 0
        self._thread: Optional[threading.Thread] = None  # started by the first check, then kept

    @staticmethod
    def key(hashed: bytes, user: str, password: bytes) -> bytes:
        return hashlib.sha256(hashed + b"\0" + user.encode("utf-8") + b"\0" + password).digest()

    def known(self, key: bytes) -> Optional[bool]:
        """The remembered result for ``key``, or None."""
        results = self._results
        if key in results[True]:
            return True
        if key in results[False]:
            return False
        return None

    def suspect(self, host: str) -> None:
        """Mark ``host`` as one whose checks wait behind everyone else's."""
        with self._lock:
            self._suspects[host] = None
            self._suspects.move_to_end(host)
            if len(self._suspects) > self.remember:
                self._suspects.popitem(last=False)

    def submit(self, key: bytes, password: bytes, hashed: bytes, host: str = "") -> Optional[concurrent.futures.Future]:
        """A future of the check's result, or None when too many wait."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return pending
            priority = 1 if host in self._suspects else 0
            if self._waiting[priority] >= self.queue_limit:
                return None
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._pending[key] = future
            self._waiting[priority] += 1
            self._order += 1
            self._queue.put((priority, self._order, (key, password, hashed)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="bcrypt", daemon=True)
                self._thread.start()
        return future

    def close(self) -> None:
        self._queue.put((2, 0, None))

    def _work(self) -> None:
        while True:
            priority, _, item = self._queue.get()
            if item is None:
                return
            key, password, hashed = item
            with self._lock:
                self._waiting[priority] -= 1
            used = time.thread_time()
            try:
                # Longer passwords are cut at 72 bytes, as bcrypt itself reads
                # no further and Go's check (node_exporter's) ignores the rest.
                ok = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
            except ValueError as exc:  # a hash bcrypt cannot use: validated against, but never fatal
                log.debug("bcrypt check failed: %s", exc)
                ok = False
            used = time.thread_time() - used
            self.checks += 1
            with self._lock:
                table = self._results[ok]
                table[key] = None
                if len(table) > self.remember:
                    table.popitem(last=False)
                future = self._pending.pop(key)
            future.set_result(ok)
            # Rest in proportion, so a flood of guesses gets cpu_share of a
            # core at most; the result is out already, nobody waits for this.
            time.sleep(used * (1.0 / self.cpu_share - 1.0))


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes], checker: Optional[BcryptChecker] = None):
        self.users = dict(users)
        # An unknown user is checked against the costliest configured hash,
        # so it takes as long as a wrong password; nothing is computed at start.
        self._stand_in = max(self.users.values(), key=lambda h: int(h[4:6]))
        self.checker = checker or BcryptChecker()

    @staticmethod
    def parse(header: str) -> Optional[Tuple[str, bytes]]:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    def _lookup(self, user: str, password: bytes) -> Tuple[bytes, bytes, Optional[bool]]:
        hashed = self.users.get(user, self._stand_in)
        key = self.checker.key(hashed, user, password)
        return hashed, key, self.checker.known(key)

    def check(self, user: str, password: bytes) -> bool:
        """The check, waiting for bcrypt if needed (tests, tools)."""
        hashed, key, known = self._lookup(user, password)
        if known is None:
            future = self.checker.submit(key, password, hashed)
            known = bool(future is not None and future.result())
        return known and user in self.users

    async def __call__(self, request: Request) -> Optional[Response]:
        creds = self.parse(request.header("authorization"))
        if creds is not None:
            hashed, key, known = self._lookup(*creds)
            host = request.remote.rpartition(":")[0]
            if known is None:
                future = self.checker.submit(key, creds[1], hashed, host)
                if future is None:
                    self.checker.suspect(host)
                    return text_response(429, "too many credential checks waiting; try again shortly", headers=[("Retry-After", "1")], rejected="auth_throttled")
                # Shielded: a client that leaves does not cancel a check that
                # others may be waiting for, and whose result is remembered.
                known = await asyncio.shield(asyncio.wrap_future(future))
            if known and creds[0] in self.users:
                return None
            self.checker.suspect(host)
        return text_response(401, "unauthorized", headers=[("WWW-Authenticate", 'Basic realm="hostagent", charset="UTF-8"')])


def _basic_auth(users: Any, present: bool, problems: List[str], checker: Optional[BcryptChecker]) -> Optional[BasicAuth]:
    if not present:
        return None
    if users is None or isinstance(users, Mapping) and not users:
        # Written out and empty (or null) would serve with no auth at all:
        # most likely the users went missing, so it is not taken as "off".
        problems.append("basic_auth_users: has no users; remove the key to serve without basic auth")
        return None
    if not isinstance(users, Mapping):
        problems.append("basic_auth_users: must be a mapping of user name to bcrypt hash")
        return None
    hashes: Dict[str, bytes] = {}
    for user, hashed in users.items():
        # Never echo the hash itself: it is a secret too.
        match = BCRYPT_HASH.match(hashed) if isinstance(hashed, str) else None
        if isinstance(user, str) and BCRYPT_HASH.match(user):
            problems.append("basic_auth_users: a bcrypt hash is used as a user name (write `name: hash`)")
        elif not isinstance(user, str) or not user or ":" in user:
            problems.append(f"basic_auth_users: user name {user!r} must be a non-empty string without ':'")
        elif match is None or not BCRYPT_MIN_COST <= int(match.group(1)) <= 31:
            problems.append(f"basic_auth_users.{user}: not a bcrypt hash (expected $2a$/$2b$/$2y$ followed by a cost from 04 to 31 and 53 characters; {HASH_HINT})")
        elif int(match.group(1)) > BCRYPT_MAX_COST:
            cost = int(match.group(1))
            problems.append(f"basic_auth_users.{user}: bcrypt cost {cost} is too slow to check: each step doubles the work, and where cost 12 takes "
                            f"about a quarter of a second, cost {cost} takes about {_spoken_seconds(0.25 * 2 ** (cost - 12))}; "
                            f"use a cost from {BCRYPT_MIN_COST} to {BCRYPT_MAX_COST} ({HASH_HINT})")  # fmt: skip
        else:
            hashes[user] = hashed.encode("ascii")
    return BasicAuth(hashes, checker) if hashes and len(hashes) == len(users) else None


def _spoken_seconds(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


# --------------------------------------------------------------------------
# The whole file


@dataclass(frozen=True)
class WebConfig:
    """A validated web config: what the server applies, and the files it was
    made from (the config itself first), watched for changes."""

    path: str
    security: Security
    files: Tuple[str, ...]

    @property
    def ssl_context(self) -> Optional[ssl.SSLContext]:
        return self.security.ssl_context

    @property
    def auth(self) -> Optional[BasicAuth]:
        return self.security.authenticate  # type: ignore[return-value]


def load_web_config(path: str, checker: Optional[BcryptChecker] = None) -> WebConfig:
    """Parse and check the whole file; raise ConfigError listing every problem.
    ``checker`` carries remembered credential checks over from a previous load."""
    files = [path]
    data, problems = read_yaml(path)
    if problems:
        raise ConfigError(problems, path)
    data = data or {}
    if not isinstance(data, Mapping):
        # The type only: a stray value here may well be a secret.
        raise ConfigError([f"top level: must be a mapping, got {type(data).__name__}"], path)
    for key in data:
        if key not in TOP_KEYS:
            problems.append(_unknown("", str(key), TOP_KEYS))
    ctx, check_peer = None, None
    tls = data.get("tls_server_config")
    if "tls_server_config" in data and tls is None:
        # As with basic_auth_users: written out but empty is not taken as "off".
        problems.append("tls_server_config: is empty; give cert_file and key_file, or remove the key to serve plain HTTP")
    elif tls is not None:
        if not isinstance(tls, Mapping):
            problems.append("tls_server_config: must be a mapping")
        else:
            ctx, check_peer = _tls_context(tls, os.path.dirname(os.path.abspath(path)), problems, files)
    headers = _http_settings(data.get("http_server_config"), problems)
    rate_limit = _rate_limit(data.get("rate_limit"), problems)
    auth = _basic_auth(data.get("basic_auth_users"), "basic_auth_users" in data, problems, checker)
    if problems:
        raise ConfigError(problems, path)
    security = Security(ssl_context=ctx, authenticate=auth, headers=headers, rate_limit=rate_limit, check_peer=check_peer)
    return WebConfig(path, security, tuple(files))


class WebConfigWatcher:
    """Reloads the web config into ``server`` when the file, or a file it
    names, changes and stays unchanged for one more look (so a certificate
    and its key written one after the other are taken together).

    A change that does not load keeps the previous config serving, and says
    why once per change."""

    def __init__(self, config: WebConfig, server: HTTPServer, interval: float = 1.0):
        self.config = config
        self.server = server
        self.interval = interval
        self.reloads = 0
        self._seen = self._applied = self._signature(config.files)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def _signature(files: Tuple[str, ...]) -> Tuple[object, ...]:
        out: List[object] = []
        for path in files:
            try:
                info = os.stat(path)
            except OSError as exc:
                out.append((path, exc.errno))
            else:
                out.append((path, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
        return tuple(out)

    def poll(self) -> Optional[bool]:
        """One look: True if a new config was applied, False if a change was
        refused, None if nothing (new and settled) changed."""
        now = self._signature(self.config.files)
        settled, self._seen = now == self._seen, now
        if not settled or now == self._applied:
            return None
        self._applied = now
        previous = self.config.auth
        try:
            new = load_web_config(self.config.path, previous.checker if previous else None)
            self.server.set_security(new.security)
        except ConfigError as exc:
            log.error("web config %s changed but is not usable; still serving the previous one. %s", self.config.path, exc)
            return False
        except ValueError as exc:
            log.error("web config %s changed but is not applied (%s); still serving the previous one", self.config.path, exc)
            return False
        self.config = new
        # The files named may have changed too: watch the new ones.
        self._seen = self._applied = self._signature(new.files)
        self.reloads += 1
        log.info("web config %s reloaded", self.config.path)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="web-config", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # keep watching; the previous config keeps serving
                log.exception("checking the web config for changes failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
