"""/api/v1/processes on the real agent behind TLS and basic auth: the same
protection as /metrics, because the server authenticates before any route."""

from __future__ import annotations

import subprocess
import sys

import bcrypt
import requests
from support import agent_server, free_port, wait_until

PASSWORD = "list-Passw0rd-4c1d"
SECRET_ARG = "--token=PROCAPI-SECRET-81f2"
CONFIG = "collectors:\n  processes: {interval: 1}\n  filesystem: {enabled: false}\n  connections: {enabled: false}\n  cgroups: {enabled: false}\n"


def test_process_list_needs_tls_and_auth_and_holds_no_command_lines(tmp_path, certs, monkeypatch):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\nbasic_auth_users:\n  ops: '{hashed}'\n")
    holder = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (300 << 20); time.sleep(60)", SECRET_ARG])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    port = free_port()
    server = agent_server(tmp_path, CONFIG, port=port, extra_args=[f"--web.config.file={web}"])
    server.base_url = f"https://ops:{PASSWORD}@127.0.0.1:{port}"
    base = f"https://127.0.0.1:{port}/api/v1/processes"
    try:
        with server:
            server.start()
            assert requests.get(base, timeout=10).status_code == 401
            assert requests.get(base + "?sort=bogus", timeout=10).status_code == 401  # refused before the query is read
            assert requests.get(base, auth=("ops", "wrong"), timeout=10).status_code == 401

            def listed():
                resp = requests.get(base + "?sort=memory&limit=20", auth=("ops", PASSWORD), timeout=10)
                assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
                body = resp.json()
                return next((p for p in body["processes"] if p["pid"] == holder.pid and p["resident_memory_bytes"] >= 300 << 20), None)

            row = wait_until(listed, 30, "the 300 MiB holder among the 20 largest processes")
            assert row["group"] == row["name"] and row["user"]
            bad = requests.get(base + "?limit=0", auth=("ops", PASSWORD), timeout=10)
            assert bad.status_code == 400 and "limit must be a whole number from 1 to" in bad.text
            raw = requests.get(base + "?limit=500", auth=("ops", PASSWORD), timeout=10).text
            assert "PROCAPI-SECRET" not in raw and "cmdline" not in raw
    finally:
        holder.kill()
        holder.wait()
