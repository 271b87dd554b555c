"""A careless textfile writer, for tests: rewrites a .prom file in place, in two halves.

    python tests/textfile_writer.py PATH ROUNDS LINES

Each round truncates PATH and writes LINES series ``job_state{job="j<i>"} <round>``,
split inside a line (never at a line boundary), pausing between the halves
for 0 to 0.2 s, as a script writing without a temporary file and rename
does. A reader must never serve a mix of rounds or part of one.
"""

from __future__ import annotations

import random
import sys
import time

PAUSES = (0.0, 0.005, 0.03, 0.2)


def content(round_: int, lines: int) -> bytes:
    return "".join(f'job_state{{job="j{i}"}} {round_}\n' for i in range(lines)).encode()


def main(argv: list) -> int:
    path, rounds, lines = argv[0], int(argv[1]), int(argv[2])
    rng = random.Random(7)
    for n in range(1, rounds + 1):
        text = content(n, lines)
        cut = rng.choice([i for i in range(1, len(text) - 1) if text[i - 1:i] != b"\n"])
        with open(path, "wb") as f:
            f.write(text[:cut])
            f.flush()
            time.sleep(rng.choice(PAUSES))
            f.write(text[cut:])
        time.sleep(rng.random() * 0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
