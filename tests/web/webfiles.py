"""Web config files written for a test, and the problems they are refused with."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostagent.config import ConfigError
from hostagent.webconfig import load_web_config


def write(tmp_path: Path, text: str, name: str = "web.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems_of(tmp_path: Path, text: str) -> str:
    """The message a web config with ``text`` is refused with."""
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, text))
    return str(info.value)


def tls_and_auth(path: object) -> tuple:
    """(SSL context, BasicAuth) of a web config file."""
    loaded = load_web_config(str(path))
    return loaded.ssl_context, loaded.auth
