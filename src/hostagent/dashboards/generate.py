"""Write the dashboards to grafana/dashboards/, or check the committed files are current.

    $ hostagent dashboards
    wrote grafana/dashboards/overview.json
    ...
    $ hostagent dashboards --check
    grafana/dashboards/cpu.json is out of date; run `hostagent dashboards`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..project import ROOT
from .boards import build_all

DEFAULT_OUTPUT = ROOT / "grafana" / "dashboards"


def render(board: Dict[str, Any]) -> str:
    """The committed text of one dashboard: stable key order, two-space indent."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def expected_files(thresholds_path: Optional[Path] = None) -> Dict[str, str]:
    """File name -> content of every dashboard, thresholds read from ``thresholds_path``."""
    from ..alerting import thresholds  # loaded late: a broken thresholds file is reported by main()

    th = thresholds.load(thresholds_path)
    return {f"{name}.json": render(board) for name, board in build_all(th).items()}


def stale_files(output: Path, expected: Dict[str, str]) -> List[str]:
    """Problems that make ``output`` differ from ``expected``, one line each."""
    problems = []
    for name, text in expected.items():
        path = output / name
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} is out of date")
    for path in sorted(output.glob("*.json")):
        if path.name not in expected:
            problems.append(f"{path} is not made by the generator (remove it)")
    return problems


def write_files(output: Path, expected: Dict[str, str]) -> List[Path]:
    """Write the files that changed; return their paths."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected.items():
        path = output / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """`hostagent dashboards [--check]`: 0 when written or current, 1 when stale, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="hostagent dashboards", description="Generate the Grafana dashboards from code and config/alerting.yaml.")
    parser.add_argument("--check", action="store_true", help="only check the files are current; exit 1 if not")
    parser.add_argument("--output-dir", "--output", dest="output", type=Path, default=DEFAULT_OUTPUT, help=f"dashboards directory (default {DEFAULT_OUTPUT})")
    parser.add_argument("--config", "--thresholds", dest="thresholds", type=Path, default=None, help="alert thresholds file (default config/alerting.yaml)")
    args = parser.parse_args(argv)
    try:
        expected = expected_files(args.thresholds)
    except (OSError, ValueError) as exc:  # ThresholdsError is a ValueError
        print(f"hostagent dashboards: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale_files(args.output, expected)
        for line in problems:
            print(f"{line}; run `hostagent dashboards`", file=sys.stderr)
        if not problems:
            print(f"{len(expected)} dashboards in {args.output} are current")
        return 1 if problems else 0
    for path in write_files(args.output, expected):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
