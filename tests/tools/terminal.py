"""A real terminal for the tests: tmux on a private socket, read with capture-pane."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid
from typing import Callable, Dict, Mapping, Optional, Sequence

from support import REPO, require_tool


class Tmux:
    """One detached tmux session running ``hostagent ARGV`` in a shell that
    reports the exit status and then stays, so the pane can be read after."""

    def __init__(self, argv: Sequence[str], width: int = 80, height: int = 24, env: Optional[Mapping[str, str]] = None, python_code: Optional[str] = None):
        self.exe = require_tool("tmux")
        self.socket = f"hostagent-test-{uuid.uuid4().hex[:8]}"
        full = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "COLUMNS": "", "LINES": ""}
        full.update(env or {})
        assigns = " ".join(f"-u {k}" for k, v in full.items() if not v) + " " + " ".join(f"{k}={shlex.quote(v)}" for k, v in full.items() if v)
        program = [sys.executable, "-c", python_code] if python_code else [sys.executable, "-m", "hostagent"]
        command = f"cd {shlex.quote(str(REPO))} && env {assigns} {' '.join(shlex.quote(a) for a in [*program, *argv])}; echo EXITED $?; sleep 600"
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t", command)

    def tmux(self, *args: str) -> str:
        done = subprocess.run([self.exe, "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def screen(self, escapes: bool = False, history: bool = False) -> str:
        """The visible pane (and the lines scrolled off it, with history)."""
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), *(["-S", "-"] if history else []), "-t", "t")

    def lines(self) -> list:
        return self.screen().split("\n")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def state(self) -> Dict[str, str]:
        """Whether the alternate screen is on and the cursor shown, as tmux sees the pane."""
        out = self.tmux("display-message", "-p", "-t", "t", "#{alternate_on} #{cursor_flag} #{pane_width} #{pane_height}").split()
        return {"alternate": out[0], "cursor": out[1], "width": out[2], "height": out[3]}

    def wait(self, check: Callable[[str], object], what: str, timeout: float = 30.0, history: bool = False) -> str:
        """Poll the screen until ``check(screen)`` is truthy; fail showing the screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(history=history)
            if check(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; the screen:\n{screen}")

    def close(self) -> None:
        try:
            subprocess.run([self.exe, "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def __enter__(self) -> "Tmux":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
