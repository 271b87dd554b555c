"""Alertmanager with the repository's routes and a webhook sink in the test
process: what tests of delivery, muting and grouping drive."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import yaml

from support import REPO

AM_DIR = REPO / "alertmanager"
FAST = "1s"


# --------------------------------------------------------------------------
# A webhook receiver in the test process


class Inbox:
    """Notifications received, by path, and a way to wait for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: List[Tuple[str, Dict[str, Any]]] = []

    def add(self, path: str, body: Dict[str, Any]) -> None:
        with self._cond:
            self.items.append((path, body))
            self._cond.notify_all()

    def at(self, path: Optional[str] = None) -> List[Dict[str, Any]]:
        """What arrived so far at ``path`` (everywhere when None)."""
        with self._cond:
            return [body for p, body in self.items if path is None or p == path]

    def wait(self, path: str, match: Callable[[Dict[str, Any]], bool], timeout: float = 20.0) -> Dict[str, Any]:
        """The first notification at ``path`` that ``match`` accepts."""
        def found() -> Optional[Dict[str, Any]]:
            return next((body for p, body in self.items if p == path and match(body)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                summary = [(p, b.get("status"), [a.get("labels", {}).get("alertname") for a in b.get("alerts", [])]) for p, b in self.items]
                raise AssertionError(f"no matching notification at {path} within {timeout}s; received: {summary}")
            return found()  # type: ignore[return-value]


@contextlib.contextmanager
def webhook_sink() -> Iterator[Tuple[Inbox, str]]:
    """An Inbox and the base URL of the HTTP server that fills it (127.0.0.1, a free port)."""
    box = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.add(self.path, json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------
# The repo's config, adapted


def adapt_alertmanager(receiver_url: str, text: Optional[str] = None, fast: Optional[str] = FAST) -> str:
    """alertmanager.yml (or ``text``) with every channel posting to
    ``receiver_url`` and, unless ``fast`` is None, every route's waits at ``fast``."""
    doc = yaml.safe_load(text if text is not None else (AM_DIR / "alertmanager.yml").read_text())
    doc["templates"] = [str(AM_DIR / t) for t in doc["templates"]]

    def quick(route: Dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route or route is doc["route"]:
                route[key] = fast
        if "repeat_interval" in route or route is doc["route"]:
            route["repeat_interval"] = "1h"  # no repeats during the test
        for child in route.get("routes", []):
            quick(child)

    if fast is not None:
        quick(doc["route"])
    for receiver in doc["receivers"]:
        name = receiver["name"]
        slack = [dict(config) for config in receiver.get("slack_configs") or []]
        for i, config in enumerate(slack):
            # Slack and Discord (its Slack-compatible endpoint) render our templates.
            config.pop("api_url_file")
            config["api_url"] = f"{receiver_url}/slack/{name}/{i}"
        # Webhook JSON carries every label and annotation; email needs an SMTP
        # server and is rendered by amtool in tests/alerting instead.
        receiver.clear()
        receiver.update(name=name, webhook_configs=[{"url": f"{receiver_url}/hook/{name}", "send_resolved": True}])
        if slack:
            receiver["slack_configs"] = slack
    return yaml.safe_dump(doc, sort_keys=False)
