"""TLS and basic auth from a web config file in the exporter-toolkit format.

    tls_server_config:
      cert_file: /etc/hostagent/tls.crt
      key_file: /etc/hostagent/tls.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: /etc/hostagent/ca.crt          # needed to verify clients
      min_version: TLS12                             # TLS10..TLS13
    basic_auth_users:
      prometheus: $2b$12$...                         # bcrypt hash

The file is validated completely at start; every problem is reported with its
key path. Passwords and hashes never reach logs or metrics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import hashlib
import hmac
import logging
import os
import re
import ssl
from typing import Any, Dict, List, Mapping, Optional, Tuple

import bcrypt

from .config import ConfigError, read_yaml
from .web import HandlerPool, Request, Response, text_response

TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
HTTP_KEYS = ("http2", "headers")
# Accepted so existing node_exporter files load, but not applied: Go's cipher
# and curve names have no direct equivalent in Python's ssl module, and this
# server speaks HTTP/1.1 only. Each use is warned about at start.
IGNORED_KEYS = ("tls_server_config.cipher_suites", "tls_server_config.curve_preferences",
                "tls_server_config.prefer_server_cipher_suites", "http_server_config.http2",
                "http_server_config.headers")  # fmt: skip

BCRYPT_THREADS = 2

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


def _unknown(path: str, key: str, allowed: Tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{path}{key}: unknown key{hint}"


def _file(tls: Mapping[str, Any], key: str, base: str, problems: List[str]) -> Optional[str]:
    """The path under ``key``, resolved against ``base`` (the web config
    file's directory, as exporter-toolkit does), if it names a readable file.

    Checked before OpenSSL sees it: OpenSSL's errors do not say which of the
    files it was given is the missing one."""
    value = tls.get(key)
    if not value:
        return None
    where = f"tls_server_config.{key}"
    if not isinstance(value, str) or not value or "\0" in value:
        kind = type(value).__name__ if not isinstance(value, str) else "an empty string" if not value else "a string with a NUL byte"
        problems.append(f"{where}: must be a file path, got {kind}")
        return None
    path = os.path.join(base, value)
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        problems.append(f"{where}: file not found: {path}")
    except IsADirectoryError:
        problems.append(f"{where}: is a directory, not a file: {path}")
    except PermissionError:
        problems.append(f"{where}: permission denied: {path}")
    except OSError as exc:
        problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
    else:
        return path
    return None


def _tls_context(tls: Mapping[str, Any], base: str, problems: List[str]) -> Optional[ssl.SSLContext]:
    prefix = "tls_server_config."
    for key in tls:
        if key not in TLS_KEYS:
            problems.append(_unknown(prefix, str(key), TLS_KEYS))
        elif prefix + key in IGNORED_KEYS:
            _warn_ignored(prefix + key)
    before = len(problems)
    if not tls.get("cert_file") or not tls.get("key_file"):
        problems.append(f"{prefix}cert_file and {prefix}key_file: both are required for TLS")
    auth_type = tls.get("client_auth_type", "NoClientCert") or "NoClientCert"
    verify = CLIENT_AUTH.get(auth_type) if isinstance(auth_type, str) else None
    if auth_type in UNSUPPORTED_CLIENT_AUTH:
        problems.append(f"{prefix}client_auth_type: {auth_type} (a certificate requested but not verified) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file")
    elif verify is None:
        problems.append(f"{prefix}client_auth_type: must be one of {', '.join(list(CLIENT_AUTH) + list(UNSUPPORTED_CLIENT_AUTH))}, got {auth_type!r}")
    if verify not in (None, ssl.CERT_NONE) and not tls.get("client_ca_file"):
        problems.append(f"{prefix}client_ca_file: required when client_auth_type is {auth_type}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
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
    cert, key, ca = (_file(tls, k, base, problems) for k in ("cert_file", "key_file", "client_ca_file"))
    if cert and key:
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"{prefix}cert_file/key_file: cannot load certificate and key ({cert}, {key}): {exc}")
    if ca:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"{prefix}client_ca_file: cannot load {ca}: {exc}")
    if len(problems) > before or verify is None:
        return None
    ctx.verify_mode = verify
    return ctx


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


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, off the loop."""

    def __init__(self, users: Mapping[str, bytes]):
        self.users = dict(users)
        # Checked when the user is unknown, at the users' own cost, so an
        # unknown name takes as long as a wrong password for a known one.
        cost = max((int(h[4:6]) for h in self.users.values()), default=10)
        self._dummy_hash = bcrypt.hashpw(b"not a user", bcrypt.gensalt(rounds=cost))
        # bcrypt is slow on purpose: a few threads at most, whatever the load.
        self._bcrypt = HandlerPool(BCRYPT_THREADS, name="bcrypt")
        # sha256(user, password) of credentials that passed bcrypt once; the
        # plain password is never kept.
        self._verified: Dict[bytes, str] = {}

    def _check_pair(self, creds: Tuple[str, bytes]) -> bool:
        return self.check(*creds)

    @staticmethod
    def _digest(user: str, password: bytes) -> bytes:
        return hashlib.sha256(user.encode("utf-8") + b"\0" + password).digest()

    def remembered(self, user: str, password: bytes) -> bool:
        """True if these credentials passed bcrypt before: one SHA-256, no bcrypt."""
        cached = self._verified.get(self._digest(user, password))
        return cached is not None and hmac.compare_digest(cached, user)

    def check(self, user: str, password: bytes) -> bool:
        """Constant-work check: unknown users still cost one bcrypt comparison."""
        if self.remembered(user, password):
            return True
        digest = self._digest(user, password)
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password, hashed if hashed is not None else self._dummy_hash) and hashed is not None
        if ok:
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[digest] = user
        return ok

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

    async def __call__(self, request: Request) -> Optional[Response]:
        creds = self.parse(request.header("authorization"))
        # Remembered credentials skip the bcrypt queue, so a flood of wrong
        # passwords cannot hold up a scraper that authenticated before.
        if creds is not None and (self.remembered(*creds) or await asyncio.wrap_future(self._bcrypt.submit(self._check_pair, creds))):
            return None
        return text_response(401, "unauthorized", headers=[("WWW-Authenticate", 'Basic realm="hostagent", charset="UTF-8"')])


def load_web_config(path: str) -> Tuple[Optional[ssl.SSLContext], Optional[BasicAuth]]:
    """Parse and check the whole file; raise ConfigError listing every problem."""
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
    ctx = None
    tls = data.get("tls_server_config")
    if "tls_server_config" in data and tls is None:
        # As with basic_auth_users: written out but empty is not taken as "off".
        problems.append("tls_server_config: is empty; give cert_file and key_file, or remove the key to serve plain HTTP")
    elif tls is not None:
        if not isinstance(tls, Mapping):
            problems.append("tls_server_config: must be a mapping")
        else:
            ctx = _tls_context(tls, os.path.dirname(os.path.abspath(path)), problems)
    http = data.get("http_server_config")
    if http is not None:
        if not isinstance(http, Mapping):
            problems.append("http_server_config: must be a mapping")
        else:
            problems += [_unknown("http_server_config.", str(k), HTTP_KEYS) for k in http if k not in HTTP_KEYS]
            for key in http:
                if f"http_server_config.{key}" in IGNORED_KEYS:
                    _warn_ignored(f"http_server_config.{key}")
    auth = None
    users = data.get("basic_auth_users")
    if "basic_auth_users" in data:
        if users is None or isinstance(users, Mapping) and not users:
            # Written out and empty (or null) would serve with no auth at all:
            # most likely the users went missing, so it is not taken as "off".
            problems.append("basic_auth_users: has no users; remove the key to serve without basic auth")
        elif not isinstance(users, Mapping):
            problems.append("basic_auth_users: must be a mapping of user name to bcrypt hash")
        else:
            hashes: Dict[str, bytes] = {}
            for user, hashed in users.items():
                # Never echo the hash itself: it is a secret too.
                if isinstance(user, str) and BCRYPT_HASH.match(user):
                    problems.append("basic_auth_users: a bcrypt hash is used as a user name (write `name: hash`)")
                elif not isinstance(user, str) or not user or ":" in user:
                    problems.append(f"basic_auth_users: user name {user!r} must be a non-empty string without ':'")
                elif not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed) or not 4 <= int(hashed[4:6]) <= 31:
                    problems.append(f"basic_auth_users.{user}: not a bcrypt hash (expected $2a$/$2b$/$2y$ followed by a cost from 04 to 31 and 53 characters; generate one with `htpasswd -nBC 12 \"\" | tr -d ':\\n'`)")
                else:
                    hashes[user] = hashed.encode("ascii")
            auth = BasicAuth(hashes)
    if problems:
        raise ConfigError(problems, path)
    return ctx, auth
