"""`hostagent healthcheck`: is the agent on this host answering?

For container HEALTHCHECKs and other local probes. It reads the same
configuration the agent does (``--config`` or ``$HOSTAGENT_CONFIG``, then
``HOSTAGENT_*`` variables), so it follows the listen address and the web
config: HTTPS when TLS is on. An agent listening on every interface is asked
on loopback. ``/-/healthy`` answering 200 counts as alive, and so does 401:
with basic auth on, every path asks for credentials, and asking is the agent
answering. Likewise, when the web config requires client certificates, the
agent refusing the probe's certificate-less handshake is the agent answering.

Exit status: 0 alive, 1 not (no answer, another status, or a configuration
the agent would refuse too, with the reason on stderr). Container engines
reserve other codes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from typing import Optional, Sequence

from . import config as cfgmod
from . import localagent

ALIVE = {200, 401}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hostagent healthcheck", description="Exit 0 if the agent configured here answers on /-/healthy.")
    parser.add_argument("--config", default=os.environ.get("HOSTAGENT_CONFIG"), help="the agent's config file (default: as the agent finds it)")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds to wait for the answer (default 4)")
    args = parser.parse_args(argv)
    try:
        agent = localagent.find(args.config)
    except cfgmod.ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    server_tls = agent.tls
    conn: http.client.HTTPConnection
    needs_client_cert = False
    if server_tls is not None:
        import ssl

        needs_client_cert = server_tls.verify_mode == ssl.CERT_REQUIRED
        # A liveness probe of the agent on this host, not an identity check:
        # the certificate names the host as clients see it, not loopback.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(agent.host, agent.port, timeout=args.timeout, context=context)
    else:
        conn = http.client.HTTPConnection(agent.host, agent.port, timeout=args.timeout)
    try:
        conn.request("GET", "/-/healthy")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        if needs_client_cert and _is_tls_refusal(exc):
            return 0  # refused for want of a client certificate: the agent answered
        print(f"hostagent healthcheck: no answer from {agent.listen_address}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status not in ALIVE:
        print(f"hostagent healthcheck: /-/healthy answered {status}", file=sys.stderr)
        return 1
    return 0


def _is_tls_refusal(exc: Exception) -> bool:
    """The server ended the handshake (a TLS alert, or a reset right after
    it), as opposed to no server at all."""
    import ssl

    return isinstance(exc, (ssl.SSLError, ConnectionResetError))


if __name__ == "__main__":
    sys.exit(main())
