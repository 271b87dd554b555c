"""Command-line parsing shared by the hostagent commands: a usage error is
one line naming the problem, with the nearest known spelling, never the
whole usage text."""

from __future__ import annotations

import argparse
import difflib
from typing import List, NoReturn, Optional, Sequence


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, not the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.unknown(extra)
        return parsed

    def flag_names(self) -> List[str]:
        return [name for action in self._actions for name in action.option_strings]

    def unknown(self, extra: Sequence[str], commands: Sequence[str] = ()) -> NoReturn:
        """Say in one line what the first unrecognised argument is, with the
        nearest known spelling."""
        word = extra[0]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            known = self.flag_names()
            close = [name.replace("_", "-")] if name.replace("_", "-") in known else difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else f" (see {self.prog} --help)"
            self.exit(2, f"{self.prog}: unknown flag {name}{hint}\n")
        if not commands:
            self.exit(2, f"{self.prog}: unexpected argument {word!r} (see {self.prog} --help)\n")
        close = difflib.get_close_matches(word, list(commands), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.exit(2, f"{self.prog}: unknown command {word!r}{hint}; commands: {', '.join(commands)}\n")
