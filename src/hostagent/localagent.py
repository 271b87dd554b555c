"""Where the agent configured on this host answers, for the commands that ask it.

``hostagent healthcheck`` and ``hostagent top`` (without ``--url``) read the
configuration the agent reads (``--config`` or ``$HOSTAGENT_CONFIG``, the
default files, ``HOSTAGENT_*`` variables) and its web config, so they follow
the listen address and use HTTPS when TLS is on. An agent listening on every
interface is asked on loopback.

    >>> find("config/agent.yaml").url
    'http://127.0.0.1:9100'
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class LocalAgent:
    """The local agent's address as configured, where to knock, and its TLS."""

    listen_address: str
    host: str  # where to connect: loopback for an agent on every interface
    port: int
    tls: Optional[ssl.SSLContext]  # the server's context from its web config; None for plain HTTP

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"


def probe_host(host: Optional[str]) -> str:
    """Where to knock for an agent bound to ``host`` (None: every interface)."""
    if host in (None, "", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host  # type: ignore[return-value]


def find(config_path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> LocalAgent:
    """The agent as its configuration says; raises ``config.ConfigError``
    (every problem listed) when the agent would refuse that configuration."""
    from . import config as cfgmod
    from .collectors import load_all

    config = cfgmod.load(config_path or cfgmod.default_config_path(), load_all(), os.environ if environ is None else environ)
    # The web config as the agent reads it: same checks, same relative paths.
    tls = None
    if config.web["config_file"]:
        from .webconfig import load_web_config

        tls = load_web_config(config.web["config_file"]).ssl_context
    host, port = cfgmod.parse_listen_address(config.web["listen_address"])
    return LocalAgent(config.web["listen_address"], probe_host(host), port, tls)
