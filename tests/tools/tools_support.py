"""Running the tools as users do: ``python -m hostagent <tool> ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping, Optional, Sequence

from support import REPO


def tool(*argv: str, env: Optional[Mapping[str, str]] = None, timeout: float = 120, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run ``hostagent ARGV``; stdout as bytes, stderr as text."""
    full = dict(os.environ)
    full.pop("HOSTAGENT_PROMETHEUS_URL", None)
    full.pop("HOSTAGENT_PASSWORD", None)
    full.update(env or {})
    done = subprocess.run([sys.executable, "-m", "hostagent", *argv], capture_output=True, timeout=timeout, env=full, cwd=REPO, input=stdin)
    done.stderr = done.stderr.decode("utf-8", "replace")  # type: ignore[assignment]
    return done


def one_line_error(done: subprocess.CompletedProcess, status: Sequence[int] = (1, 2)) -> str:
    """The single stderr line of a tool that failed as a user error should: no traceback."""
    assert done.returncode in status, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return lines[0]
